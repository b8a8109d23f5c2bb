"""Shrink: a smaller model from a finished run (fewer layers, each stage healed by distillation), as a job
started detached (the app) or waited for (`tuneforge shrink`); see core/shrink/job.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from ..shrink.job import ShrinkDir, create_shrink, list_shrinks, model_layers, plan_shrink, stages_table
from ..shrink.layers import checkpoint_parameters
from ..shrink.plan import PLAN_FILE, ShrinkPlan, parse_stages
from . import Echo

__all__ = ["PLAN_FILE", "ShrinkDir", "ShrinkPlan", "checkpoint_parameters", "create_shrink", "list_shrinks", "model_layers", "parse_stages", "plan_shrink", "resume",
           "resume_shrink", "shrink", "stages_table", "start"]


def start(plan: ShrinkPlan, shrink_dir: Path | None = None) -> tuple[ShrinkDir, subprocess.Popen]:
    """Create a shrink directory for `plan` and start the shrink in a detached child; returns both at once."""
    folder = create_shrink(plan, shrink_dir)
    return folder, resume(folder)


def resume(folder: ShrinkDir) -> subprocess.Popen:
    """Start (or continue, after a stop) the shrink in `folder` in a detached child; returns at once."""
    from ..shrink.process import start_shrink

    return start_shrink(folder)


def shrink(source: str, layers: int | None = None, keep: float | None = None, stages: int | list[int] | None = None,
           data: str | None = None, eval_data: str | None = None, epochs: float | None = None, max_steps: int | None = None,
           run_dir: Path | None = None, echo: Echo = print, settings: dict[str, Any] | None = None) -> ShrinkDir:
    """Shrink `source` (a finished run or a model reference) to `layers` (or the fraction `keep`) in
    `stages` (a count, or each stage's layer count), healing each stage by distillation on the run's data (or `data`) for `epochs` (or
    `max_steps`); `settings` are further healing-run settings (e.g. lora_r, learning_rate). Runs here, stage by stage,
    and returns the shrink directory; its last stage is the smallest model."""
    from ..shrink.job import run_shrink

    plan = plan_shrink(source, layers, keep, stages, data, eval_data, epochs, max_steps, settings)
    folder = create_shrink(plan, run_dir)
    if echo:
        echo(f"shrink directory: {folder.path} ({' → '.join(map(str, plan.layers))} layers)")
    run_shrink(folder, echo)
    return folder


def resume_shrink(shrink_dir: str | Path, echo: Echo = print) -> ShrinkDir:
    """Continue a stopped shrink from where it stopped (a healing run from its last checkpoint), here."""
    from ..shrink.job import run_shrink

    folder = ShrinkDir(Path(shrink_dir))
    folder.plan()  # a ConfigError unless it is a shrink directory
    run_shrink(folder, echo)
    return folder
