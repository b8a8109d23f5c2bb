"""`tuneforge shrink`: a smaller model from a fine-tuned one, stage by stage (core/shrink)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..api.shrink import PLAN_FILE, parse_stages
from ..errors import ConfigError
from .app import DataOption, EvalDataOption, app, say


@app.command()
def shrink(
    source: Annotated[str | None, typer.Argument(help="A finished run (its merged model) or any model reference.")] = None,
    layers: Annotated[int | None, typer.Option(help="Decoder layers to keep.")] = None,
    keep: Annotated[float | None, typer.Option(help="The share of the layers to keep, e.g. 0.66.")] = None,
    stages: Annotated[str | None, typer.Option(help="Stages: how many (default: an eighth of the layers at most each), or each one's layer count, e.g. 24,20,16.")] = None,
    data: DataOption = None,
    eval_data: EvalDataOption = None,
    epochs: Annotated[float | None, typer.Option(help="Healing passes over the data per stage (default 3).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Healing steps per stage (instead of epochs).")] = None,
    general_prompts: Annotated[int | None, typer.Option(help="Heal also on the teacher's answers to this many general chat prompts (default all 60; 0 = the data only).")] = None,
    out: Annotated[Path | None, typer.Option("--run-dir", help="Where to create the shrink directory (default: TUNEFORGE_HOME/runs/…).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue this shrink directory where it stopped.")] = None,
) -> int:
    """Remove the least influential layers stage by stage, healing each stage by distillation from the one before.

    Each stage is a run directory (SHRINK_DIR/stage-K) that merge, export, chat and eval take as they are.
    """
    from ..api import shrink as shrink_api
    from ..api.shrink import stages_table

    if resume is not None:
        if source is not None or any(v is not None for v in (layers, keep, stages, data, eval_data, epochs, max_steps, general_prompts, out)):
            raise ConfigError("--resume continues a shrink as it was planned; it takes no other options",
                              f"tuneforge shrink --resume {resume}")
        folder = shrink_api.resume_shrink(resume, echo=say)
    elif source is None:
        raise ConfigError("no model to shrink given", "tuneforge shrink RUN_DIR --layers N (or --keep 0.66)")
    else:
        if (Path(source) / PLAN_FILE).is_file():
            raise ConfigError(f"{source}: is a shrink directory", f"continue it with `tuneforge shrink --resume {source}`")
        settings = {"distill_general": general_prompts} if general_prompts is not None else None
        folder = shrink_api.shrink(source, layers, keep, parse_stages(stages), data, eval_data, epochs, max_steps, out, echo=say,
                                 settings=settings)
    from ..api.shrink import checkpoint_parameters

    plan = folder.plan()
    say("\n" + stages_table(plan, folder.finished_stages(), checkpoint_parameters(Path(plan.start))))
    final = folder.stage(plan.stages)
    say(f"\nthe smallest model: {final.merged}\nnext: tuneforge export {final.path}")
    return 0

