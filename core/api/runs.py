"""Runs: create and plan one; start it detached, stop, resume, wait; train (start, then wait); merge; the whole pipeline."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import RunConfig
from ..jobs import JobDir
from ..runs import RunDir, list_runs, new_run
from . import Echo

if TYPE_CHECKING:  # training pulls in torch; the shells must start without it
    from tuneforge.exporters.export import ExportResult

    from ..accelerate_setup import Machine
    from ..events import TrainResult
    from ..fit import Fit
    from ..hardware import Hardware
    from ..memory import PhaseNeeds

__all__ = ["RunDir", "RunPlan", "create_run", "list_runs", "merge", "plan_run", "resume", "run_pipeline", "start", "stop", "train",
           "wait"]


def create_run(config: RunConfig, run_dir: Path | None = None, echo: Echo = None, must_export: bool = False) -> RunDir:
    """A new run directory whose config.yaml holds the choices this machine settles (method, learning rate).

    Relative paths are made absolute against the working folder first. The data is checked and the
    model found (downloaded or imported when needed) before anything is written, so a typo or an
    unreachable model leaves no run behind. A model whose architecture GGUF export cannot write is
    said now, before any step (a `warning` event, and `echo`); with `must_export` it is an ExportError.
    """
    from tuneforge.exporters.gguf.types import export_refusal

    from ..data.formats import load_run_data
    from ..errors import ExportError
    from ..events import Warned
    from ..hardware import detect
    from ..models import resolve_base
    from ..settle import require_method_data, settle_run
    from ..tracking import require_trackers
    from ..train.preflight import check_training_inputs

    config = config.with_absolute_paths(Path.cwd())  # the training child runs elsewhere: keep no relative path
    require_trackers(config.report_to)  # a tracker that cannot log is said now, not an hour into training
    loaded, eval_loaded = load_run_data(config)
    require_method_data(loaded, eval_loaded, config.method)
    student = resolve_base(config)
    check_training_inputs(config, student)
    refusal = export_refusal(student.architecture)
    hint = "train and merge it with `tuneforge train`, then chat with `tuneforge chat RUN_DIR`; or pick a model that exports (`tuneforge models`)"
    if refusal and must_export:
        raise ExportError(f"{config.model}: {refusal}", hint)
    # Settled as far as it can be before the data is tokenized; the training child settles the rest.
    run = new_run(settle_run(config, detect(), data=None, dims=None, arch=student.arch).config, run_dir)
    if refusal:
        run.record(Warned(error=refusal, hint=hint))
        if echo:
            echo(f"warning: {config.model}: {refusal}")
    return run


@dataclass
class RunPlan:
    """What a run will need before it starts: auto-fit's choice with its memory plan, then merge and export."""

    model: str
    params_b: float
    method: str
    fit: Fit
    merge: PhaseNeeds
    export: PhaseNeeds
    hardware: Hardware
    notes: tuple[str, ...] = ()
    """What settling chose for this data besides the batch (replay, early stopping), in words."""


def plan_run(config: RunConfig, with_data: bool = True, quants: tuple[str, ...] = ("q4_k_m",)) -> RunPlan:
    """The memory plan of `config` on this machine, auto-fitted to the data's token lengths
    (with `with_data`; else every example is taken to be max_length long, half of it answer)."""
    from ..errors import DataError, ModelError
    from ..hardware import detect
    from ..memory import merge_and_export_needs, model_shape
    from ..models import resolve_base
    from ..paths import tuneforge_home
    from ..settle import DataFacts, settle_run
    from .data import check_data

    hardware = detect(tuneforge_home())
    dims = model_shape(config.model) or model_shape(resolve_base(config).path)
    if dims is None:
        raise ModelError(f"{config.model}: its config.json does not give the dimensions a plan needs",
                         "check that it is a decoder-only transformer with hidden_size, num_hidden_layers and vocab_size")
    facts = DataFacts.assumed(config)
    if with_data:
        report = check_data(config.data, config.model, config.max_length, config.eval_split, config.columns, config.seed,
                            config.data_split)
        if report.problems or report.stats is None:
            raise DataError(f"{report.path}: {len(report.problems)} problem(s), first: {report.problems[0]}",
                            f"run `tuneforge data check {report.path}` for all of them")
        facts = DataFacts.measured(report.stats)
    settled = settle_run(config, hardware, facts, dims)
    assert settled.fit is not None  # the dimensions are known
    merge_needs, export_needs = merge_and_export_needs(dims[0], quants)
    return RunPlan(config.model, dims[0], settled.config.method, settled.fit, merge_needs, export_needs, hardware,
                   settled.notes)


def start(run: RunDir, machine: Machine | None = None, echo: Echo = None) -> subprocess.Popen:
    """Start training `run` in a child of its own session and return at once (the app; `tuneforge train` waits).

    A run with `processes`/`nodes` above 1 starts through `accelerate launch` (`echo` hears how) and `machine`
    says where this machine sits among several. Refused before a child starts when the run is training already
    or trained already. Follow it through its events (`RunDir.history`) or `wait`.
    """
    from ..training_process import start_training

    _require_trackers(run)
    return start_training(run, machine=machine, echo=echo)


def resume(run: RunDir, accept_changes: bool = False, machine: Machine | None = None, echo: Echo = None) -> subprocess.Popen:
    """Continue `run` from its last complete checkpoint in a new child and return at once; `accept_changes` resumes a
    run whose settings, data, base or libraries changed since it started (refused otherwise)."""
    from ..training_process import start_training

    _require_trackers(run)
    return start_training(run, resume=True, accept_changes=accept_changes, machine=machine, echo=echo)


def stop(job: JobDir) -> bool:
    """Ask a run's (or a shrink's) processes to checkpoint and exit at the end of the step; False when none runs."""
    from ..jobs import stop as stop_job

    return stop_job(job)


def wait(run: RunDir, child: subprocess.Popen, echo: Echo = print) -> TrainResult:
    """Wait for a training child this process started, relaying its progress to `echo` when it has a pipe; its result
    (TrainingStopped or TrainingFailed when it did not finish, with why and how to resume)."""
    from ..training_process import wait_for_training

    return wait_for_training(run, child, echo)


def train(run_dir: str | Path, resume: bool = False, echo: Echo = print, accept_changes: bool = False,
          machine: Machine | None = None) -> TrainResult:
    """Train a prepared run directory, or resume it from its last complete checkpoint, and wait for it.

    Training runs in a child process that this call starts and waits for, relaying its progress to `echo`:
    if the child is killed (out of memory, kill -9) this process survives and raises a
    TrainingFailed that says why and how to resume; Ctrl-C stops it with a checkpoint (TrainingStopped).
    `tuneforge.core.train.train_run` trains in this process instead.
    """
    from ..training_process import train_in_child

    run = RunDir(Path(run_dir).expanduser().resolve())
    _require_trackers(run)
    return train_in_child(run, resume, accept_changes, echo, machine)


def _require_trackers(run: RunDir) -> None:
    """A tracker that cannot log is said before a child starts (else the child says what is missing)."""
    from ..tracking import require_trackers

    if run.config_file.is_file():
        require_trackers(run.load_config().report_to)


def merge(run_dir: str | Path, dtype: str | None = None) -> Path:
    """Merge a trained run's adapter into its base (RUN_DIR/merged)."""
    from ..merge import merge_run

    return merge_run(RunDir(Path(run_dir).expanduser().resolve()), dtype)


def run_pipeline(config: RunConfig, run_dir: Path | None = None, echo: Echo = print,
                 quants: list[str] | None = None) -> tuple[RunDir, ExportResult | None]:
    """Train → merge → (with `quants`) export and verify, in a new run directory."""
    from ..errors import ConfigError
    from ..methods import method_spec
    from .export import export

    if not method_spec(config.method).mergeable:  # say so before training, not after
        raise ConfigError(f"method {config.method} cannot be merged into the model's weights or exported to GGUF",
                          f"train it with `tuneforge train --method {config.method} …`, then chat with `tuneforge chat RUN_DIR`")
    run = create_run(config, run_dir, must_export=bool(quants))
    if echo:
        echo(f"run directory: {run.path}")
    train(run.path, echo=echo)
    if echo:
        echo("merging the adapter into the base …")
    merge(run.path)
    return run, (export(run.path, quants, echo=echo) if quants else None)
