"""Progressive shrinking: a smaller model from a fine-tuned one, a few layers at a time.

Each stage scores the layers of the model it starts from (block influence on the data), removes
the least influential, and heals the smaller model by distillation from the one it started
from (the `distill` method: KL to the teacher's token distributions plus the SFT loss on the
answers), then merges the healing adapter. The next stage starts from that. Removing a few
layers at a time and healing in between keeps more of what the model knew than removing them
all at once (bench/shrink.py measures both).

A shrink directory holds everything, as files:

    SHRINK_DIR/shrink.json     the plan (ShrinkPlan), written once
    SHRINK_DIR/events.jsonl    launched / stopped / failed, and one `shrink` event per finished stage
    SHRINK_DIR/stage-K/        a normal run directory (distill): pruned/ (the stage's starting model and
                               its layer scores), checkpoints/, adapter/, merged/ (the stage's model),
                               eval/; `tuneforge export|chat|eval SHRINK_DIR/stage-K` take it as it is

Each stage trains in its own child process (as `tuneforge train` does), so Ctrl-C or the app's
Stop checkpoints the stage; `tuneforge shrink --resume SHRINK_DIR` continues from that
checkpoint, skipping what is done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..config import RunConfig
from ..errors import ConfigError, ModelError
from ..events import RunHistory, Shrunk, Warned
from ..jobs import JobDir, list_jobs, new_folder
from ..runs import RunDir
from .plan import PLAN_FILE, ShrinkPlan, heal_settings, stage_layers, target_layers

PRUNED = "pruned"
"""The stage run's starting model: the previous model with this stage's layers removed."""

Echo = Callable[[str], None]


@dataclass(frozen=True)
class ShrinkDir(JobDir):
    """A shrink directory (a job whose child prunes and heals stage after stage): its plan, its events, its stages."""

    MARKER: ClassVar[str] = PLAN_FILE
    LOG: ClassVar[str] = "shrink.log"
    """The output of a shrink the app started."""
    WHAT: ClassVar[str] = "the shrink process"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser().resolve())

    def plan(self) -> ShrinkPlan:
        """The plan it was started with."""
        return ShrinkPlan.read(self.path)

    def stage(self, number: int) -> RunDir:
        """Stage `number`'s run directory (1 is the first)."""
        return RunDir(self.path / f"stage-{number}")

    def finished_stages(self, history: RunHistory | None = None) -> list[Shrunk]:
        """The `shrink` event of every finished stage, in stage order (from `history` when the caller holds it)."""
        stages = {e.stage: e for e in (history or self.history()).events if isinstance(e, Shrunk)}
        return [stages[k] for k in sorted(stages)]

    def state(self, history: RunHistory | None = None) -> str:
        """created, running, stopped, failed or finished — read off its files."""
        history = history or self.history()
        if len(self.finished_stages(history)) == self.plan().stages:
            return "finished"
        return super().state(history)

    def resume_hint(self) -> str:
        """How to continue a stopped shrink."""
        return f"continue with `tuneforge shrink --resume {self.path}`; a stage continues from its last checkpoint"


def list_shrinks() -> list[ShrinkDir]:
    """Every shrink directory under TUNEFORGE_HOME/runs, newest first."""
    return list_jobs(ShrinkDir)


def source_start(source: str) -> tuple[Path, RunConfig | None]:
    """The model folder a shrink of `source` starts from and, for a run, its config: a finished run's
    merged (or fully trained) weights, or any model reference resolved to its folder."""
    from ..models import resolve_model

    path = Path(source).expanduser()
    if (path / "config.yaml").is_file():
        run = RunDir(path.resolve())
        if not (run.merged / "config.json").is_file():
            raise ConfigError(f"{source}: this run has no merged weights to shrink",
                              f"merge it first: tuneforge merge {source}")
        return run.merged, run.load_config()
    return resolve_model(source).path, None


def model_layers(folder: Path) -> int:
    """The decoder layer count in a model folder's config.json."""
    from ..memory import model_shape

    dims = model_shape(folder)
    if dims is None:
        raise ModelError(f"{folder}: its config.json does not say how many decoder layers it has",
                         "shrinking works on decoder-only transformers with hidden_size, num_hidden_layers and vocab_size")
    return dims[1].layers


def plan_shrink(source: str, layers: int | None = None, keep: float | None = None, stages: int | list[int] | None = None,
                data: str | None = None, eval_data: str | None = None, epochs: float | None = None,
                max_steps: int | None = None, settings: dict[str, Any] | None = None) -> ShrinkPlan:
    """The plan for shrinking `source` to `layers` (or the fraction `keep`) in `stages` (a count, or the
    layer count after each stage, whose last is the target when neither is given), healed on the
    source run's data (or `data`) for `epochs` (or `max_steps`) a stage, with further healing `settings`.
    Refused, with a hint, for a target that removes nothing or leaves under two layers, and for healing
    settings a run would not take."""
    start, source_config = source_start(source)
    total = model_layers(start)
    if isinstance(stages, list) and stages and layers is None and keep is None:
        layers = stages[-1]
    target = target_layers(total, layers, keep)
    heal = heal_settings(source_config, data, eval_data, epochs, max_steps)
    heal = RunConfig.from_dict({**heal, **(settings or {}), "method": "distill", "teacher": str(start)}) \
        .with_absolute_paths(Path.cwd()).model_dump(mode="json", include=set(heal) | set(settings or {}))
    return ShrinkPlan(source, str(start), stage_layers(total, target, stages), heal)


def create_shrink(plan: ShrinkPlan, shrink_dir: Path | None = None) -> ShrinkDir:
    """A new shrink directory holding `plan`."""
    folder = new_folder(shrink_dir, f"{Path(plan.source).name}-{plan.layers[-1]}-layers",
                        "pick a new --run-dir, or continue it with `tuneforge shrink --resume`")
    plan.write(folder)
    return ShrinkDir(folder)


def stage_config(plan: ShrinkPlan, stage_dir: Path, teacher: Path) -> RunConfig:
    """The healing run of one stage: distill the pruned model from the stage's starting model."""
    return RunConfig.from_dict({**plan.heal, "model": str(stage_dir / PRUNED), "method": "distill", "teacher": str(teacher)})


def run_shrink(shrink: ShrinkDir, echo: Echo | None = print) -> list[Shrunk]:
    """Run (or continue) every stage not yet finished; returns every stage's `shrink` event.

    A stage whose healing was stopped continues from its last checkpoint; a stage that finished is
    skipped. Stopping (Ctrl-C, SIGTERM) stops the healing run with a checkpoint and raises
    TrainingStopped, recorded as a `stopped` event.
    """
    from ..errors import TrainingStopped, TuneforgeError
    from ..events import Failed, Started, Stopped

    plan = shrink.plan()
    say = echo or (lambda _text: None)
    shrink.record(Started(pid=os.getpid(), method="shrink", model=plan.source))
    try:
        for number in range(1, plan.stages + 1):
            if any(e.stage == number for e in shrink.finished_stages()):
                continue
            teacher = Path(plan.start) if number == 1 else shrink.stage(number - 1).merged
            event = _run_stage(shrink, plan, number, teacher, say)
            shrink.record(event)
            say(stage_line(event))
    except TrainingStopped as stopped:
        shrink.record(Stopped(error=stopped.message, hint=shrink.resume_hint()))
        raise TrainingStopped(stopped.message, shrink.resume_hint()) from None
    except KeyboardInterrupt:  # between healing runs: pruned, merged and measured stages are whole files
        shrink.record(Stopped(error="shrink stopped between stages", hint=shrink.resume_hint()))
        raise
    except TuneforgeError as exc:
        shrink.record(Failed(error=exc.message, hint=exc.hint))
        raise
    return shrink.finished_stages()


def _run_stage(shrink: ShrinkDir, plan: ShrinkPlan, number: int, teacher: Path, say: Echo) -> Shrunk:
    """Prune (unless done), heal (continuing a stopped healing), merge and measure one stage."""
    from ..merge import merge_run
    from ..training_process import train_in_child

    run = shrink.stage(number)
    if not run.config_file.is_file():
        run.path.mkdir(parents=True, exist_ok=True)
        run.save_config(stage_config(plan, run.path, teacher))
    config = run.load_config()
    pruned = run.path / PRUNED
    if not (pruned / "config.json").is_file():
        say(f"stage {number}/{plan.stages}: scoring the {plan.layers[number - 1]} layers of {teacher} …")
        record = prune(teacher, plan.layers[number], config, pruned)
        say(f"stage {number}/{plan.stages}: removed layers {record['removed']} → {plan.layers[number]} layers; healing …")
        if record["pattern_changed"]:
            warning = Warned(error=f"stage {number}: the kept layers no longer follow the source's pattern of sliding-window "
                                   "and global attention layers, which llama.cpp's graph for this family assumes",
                             hint="`tuneforge export` may refuse this stage's model; chat and eval with it through transformers")
            shrink.record(warning)
            say(f"warning: {warning.error}; {warning.hint}")
    if not (run.adapter / "adapter_config.json").is_file():
        train_in_child(run, resume=run.last_checkpoint() is not None, echo=say)
    if not (run.merged / "config.json").is_file():
        merge_run(run)
    return measure_stage(run, number)


def prune(teacher: Path, layers: int, config: RunConfig, target: Path) -> dict[str, Any]:
    """Score `teacher`'s layers on the stage's training data, remove the least influential down to
    `layers`, and write the result (with its scores) to `target`; returns the scores record."""
    import torch
    from transformers import GenerationConfig

    from ..data.formats import load_run_data
    from ..data.prepare import DataRecipe, prepare
    from ..language_model import load_language_model
    from ..merge import merge_dtype
    from ..train.setup import load_tokenizer
    from .layers import SCORED_TEXTS, block_influence, least_influential, remove_layers, write_pruned

    tokenizer = load_tokenizer(teacher)
    loaded, eval_loaded = load_run_data(config)
    data = prepare(loaded, tokenizer, DataRecipe.from_config(config), eval_loaded)
    token_ids = [example.input_ids for example in data.train[:SCORED_TEXTS]]
    # Scored in fp32 (a CPU computes 16-bit slowly and some of its kernels not at all); saved as the teacher was.
    model = load_language_model(teacher, dtype=torch.float32)
    model.eval()
    types_before = getattr(model.config.get_text_config(), "layer_types", None)
    scores = block_influence(model, token_ids)
    removed = least_influential(scores, len(scores) - layers)
    remove_layers(model, removed)
    types_after = getattr(model.config.get_text_config(), "layer_types", None)
    model.to(getattr(torch, merge_dtype(teacher)))
    generation = GenerationConfig.from_pretrained(teacher) if (teacher / "generation_config.json").is_file() else None
    record = {"teacher": str(teacher), "layers": layers, "removed": removed, "scores": scores,
              "scored_examples": len(token_ids), "parameters": sum(p.numel() for p in model.parameters()),
              "pattern_changed": pattern_changed(types_before, types_after)}
    write_pruned(model, tokenizer, generation, target, record)
    return record


def pattern_changed(before: list[str] | None, after: list[str] | None) -> bool:
    """Whether removing layers changed a model's mixed per-layer attention types (sliding-window and global)
    from the pattern the source follows: the kept sequence is not the start of the source's."""
    if not before or not after or len(set(before)) < 2:
        return False
    return after != before[: len(after)]


def measure_stage(run: RunDir, number: int) -> Shrunk:
    """The stage's `shrink` event: its layers and parameters, the healing's figures, and its answers'
    accuracy on the eval split (the training data when nothing was held out)."""
    from ..evaluation import evaluate_run
    from .layers import SCORES_FILE

    record = json.loads((run.path / PRUNED / SCORES_FILE).read_text(encoding="utf-8"))
    finished = run.history().finished
    result = finished.result if finished else None
    report = evaluate_run(run.path, kinds=("tuned",))
    accuracy_of = "training data" if report.asked_training_data else "eval split"
    tuned = report.models[0]
    return Shrunk(stage=number, layers=record["layers"], removed=record["removed"], scores=record["scores"],
                  parameters=record["parameters"], steps=result.steps if result else 0,
                  eval_loss=result.eval_loss if result else None, accuracy=tuned.rate("contains"), accuracy_of=accuracy_of,
                  perplexity=tuned.perplexity, model=str(run.merged))


def stage_line(event: Shrunk) -> str:
    """One finished stage in words."""
    accuracy = f"{event.accuracy:.0%} of answers right ({event.accuracy_of})" if event.accuracy is not None else "no accuracy"
    ppl = f"perplexity {event.perplexity:.2f}" if event.perplexity is not None else "no perplexity"
    return (f"stage {event.stage}: {event.layers} layers, {event.parameters / 1e6:.1f} M parameters, "
            f"{event.steps} healing steps, {accuracy}, {ppl}")


def stages_table(plan: ShrinkPlan, events: list[Shrunk], source_parameters: int | None = None) -> str:
    """Every finished stage as a table: layers, parameters, healing steps, eval loss, accuracy, perplexity."""
    header = ["stage", "layers", "removed", "parameters", "steps", "eval loss", "accuracy", "perplexity"]
    rows = [header]
    if source_parameters:
        rows.append(["source", str(plan.layers[0]), "", f"{source_parameters / 1e6:.1f} M", "", "", "", ""])
    for e in events:
        rows.append([str(e.stage), str(e.layers), ",".join(map(str, e.removed)), f"{e.parameters / 1e6:.1f} M", str(e.steps),
                     f"{e.eval_loss:.3f}" if e.eval_loss is not None else "–",
                     f"{e.accuracy:.0%}" if e.accuracy is not None else "–",
                     f"{e.perplexity:.2f}" if e.perplexity is not None else "–"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
