"""The run directory contract: config.yaml, events.jsonl, train.log, checkpoints/, adapter/, merged/, export/.

A run directory is the only state of a run; everything in it is a file a person can read.
`RunDir` is a job (`core/jobs.py`: events, log, launch, stop, state) whose child trains; it names
the run's parts and derives the run's state from them. Why a run failed or stopped is `core/diagnosis.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .checkpoint_folders import last_complete
from .errors import ConfigError
from .events import Finished, Launched, RunHistory, Started
from .jobs import JobDir, list_jobs, new_folder, pid_alive

if TYPE_CHECKING:  # pydantic takes a quarter second to import; the TUI lists runs without it
    from .config import RunConfig

BASE_RECORD = "tuneforge-base.json"
"""Written beside a trained adapter (or full model): which base model it belongs to."""


@dataclass(frozen=True)
class RunDir(JobDir):
    """A run directory (a job whose child trains) and the paths of its parts."""

    MARKER: ClassVar[str] = "config.yaml"
    LOG: ClassVar[str] = "train.log"
    WHAT: ClassVar[str] = "the training process"

    @property
    def config_file(self) -> Path:
        return self.path / self.MARKER

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    @property
    def export(self) -> Path:
        return self.path / "export"

    def save_config(self, config: RunConfig) -> RunConfig:
        """Write `config` to config.yaml atomically (settled values, so the file says what ran); returns it."""
        from .atomic import atomic_write_text

        atomic_write_text(self.config_file, config.to_yaml())
        return config

    def load_config(self) -> RunConfig:
        """The run's config.yaml; a ConfigError when this is not a run directory."""
        from .config import RunConfig

        if not self.config_file.is_file():
            raise ConfigError(f"{self.path}: not a run directory (no config.yaml)", "list runs with `tuneforge runs`")
        return RunConfig.from_yaml(self.config_file)

    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint the trainer finished writing (half-written ones are skipped)."""
        return last_complete(self.checkpoints)

    def checkpoint_to_train_from(self, resume: bool) -> Path | None:
        """The checkpoint a resume continues from (None for a fresh start); a ConfigError when a resume
        has nothing to continue, or a fresh start would overwrite what this run already trained."""
        checkpoint = self.last_checkpoint()
        finished = self._finished_as_configured() if resume else None
        if finished is not None:
            raise ConfigError(f"{self.path}: this run finished training ({finished.result.steps} steps) and nothing changed "
                              "since: there is nothing to resume",
                              f"to train it longer, raise epochs or max_steps in {self.config_file}, then resume it; "
                              "or start a new run")
        if resume and checkpoint is None:
            raise ConfigError(f"{self.path}: no complete checkpoint to resume from", f"start it again with `tuneforge train {self.path}`")
        if not resume and (checkpoint is not None or self.adapter.exists() or self.merged.exists()):
            raise ConfigError(f"{self.path}: this run already trained",
                              f"continue it with `tuneforge train --resume {self.path}`, or start a new run")
        return checkpoint if resume else None

    def _finished_as_configured(self) -> Finished | None:
        """The `finished` event when it is the run's last word on training (a launch since does not count) and its
        config.yaml was not changed after it (a person raising max_steps wants it to go on)."""
        ended = [e for e in self.history().events if e.lifecycle and not isinstance(e, (Launched, Started))]
        if not ended or not isinstance(ended[-1], Finished):
            return None
        return ended[-1] if self.config_file.stat().st_mtime <= ended[-1].time else None

    def processes(self) -> list[int]:
        """The live training processes of the latest launch: every rank that reported `started`
        (a distributed run has one per GPU), else the launched child itself."""
        return [pid for pid in self.history().training_pids if pid_alive(pid)]

    def state(self, history: RunHistory | None = None) -> str:
        """created, running, stopped, failed, trained, merged, exported or export failed — read off the files.

        A run whose child was launched (or started training) but whose process is gone
        without a final event died hard (killed, out of memory): that is `failed`.
        `history` is this run's, when the caller already holds it (a live view refreshing one).
        """
        history = history or self.history()
        state = super().state(history)
        if state == "finished":
            from tuneforge.exporters.report import passed_files

            if passed_files(self.export):  # a GGUF counts once it passed verification
                return "exported"
            if self.last_export_failure(history):
                return "export failed"
            return "merged" if (self.merged / "config.json").is_file() else "trained"
        return state

    def why_it_ended(self, history: RunHistory | None = None) -> tuple[str, str]:
        """Why the run stopped or failed, also when its child died before it could say (`diagnosis.failure_cause`)."""
        from .diagnosis import failure_cause

        return failure_cause(self, history=history)

    def resume_hint(self) -> str:
        """Resume from the last checkpoint, or start again when there is none."""
        if self.last_checkpoint() is not None:
            return f"resume from the last checkpoint with `tuneforge train --resume {self.path}`"
        return f"no checkpoint was saved yet; start again with `tuneforge train {self.path}`"

    def last_export_failure(self, history: RunHistory | None = None) -> str | None:
        """Why the latest export failed verification (a crash of llama.cpp included); None when it passed or none ran."""
        exported = (history or self.history()).exported
        return None if exported is None or exported.passed else exported.error or "a file failed verification"


def new_run(config: RunConfig, run_dir: Path | None = None) -> RunDir:
    """Create a run directory with its config.yaml; the name says when and what."""
    stem = Path(config.model).stem if config.model.endswith(".gguf") else config.model.rsplit("/", 1)[-1]
    run = RunDir(new_folder(run_dir, stem, "pick a new --run-dir, or resume it with `tuneforge train --resume`"))
    run.save_config(config)
    return run


def list_runs() -> list[RunDir]:
    """Every run directory under TUNEFORGE_HOME/runs, newest first."""
    return list_jobs(RunDir)
