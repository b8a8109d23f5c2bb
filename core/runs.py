"""The run directory contract: config.yaml, events.jsonl, train.log, checkpoints/, adapter/, merged/, export/.

A run directory is the only state of a run; everything in it is a file a person can read.
`RunDir` names its parts, records events (`core/events.py`), and derives the run's state from
them. Why a run failed or stopped is `core/diagnosis.py`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint_folders import last_complete
from .errors import ConfigError
from .events import Event, Finished, Launched, RunHistory, Started, append_event
from .paths import runs_dir

if TYPE_CHECKING:  # pydantic takes a quarter second to import; the TUI lists runs without it
    from .config import RunConfig

BASE_RECORD = "tuneforge-base.json"
"""Written beside a trained adapter (or full model): which base model it belongs to."""


@dataclass(frozen=True)
class RunDir:
    """A run directory and the paths of its parts."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def events_file(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

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

    @property
    def name(self) -> str:
        return self.path.name

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

    def record(self, event: Event) -> Event:
        """Append `event` to events.jsonl (stamped with the time; see `events.append_event`); returns it."""
        return append_event(self.events_file, event)

    def history(self) -> RunHistory:
        """Everything recorded in events.jsonl so far, folded (`RunHistory.refresh()` then reads only what follows)."""
        return RunHistory.read(self.events_file)

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

    def training_pid(self, history: RunHistory | None = None) -> int | None:
        """The process id of the training child while it runs (launched or started), else None."""
        return running_pid(history or self.history())

    def training_processes(self) -> list[int]:
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
        last = history.lifecycle
        if isinstance(last, (Launched, Started)):
            return "running" if pid_alive(last.pid) else "failed"
        if last is None:
            return "created"
        if last.kind == "finished":
            from tuneforge.exporters.report import passed_files

            if passed_files(self.export):  # a GGUF counts once it passed verification
                return "exported"
            if self.last_export_failure(history):
                return "export failed"
            return "merged" if (self.merged / "config.json").is_file() else "trained"
        return last.kind

    def last_export_failure(self, history: RunHistory | None = None) -> str | None:
        """Why the latest export failed verification (a crash of llama.cpp included); None when it passed or none ran."""
        exported = (history or self.history()).exported
        return None if exported is None or exported.passed else exported.error or "a file failed verification"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` is alive (a zombie, exited but not yet reaped, is not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a child that exited but was not yet reaped by its parent still answers signal 0
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except (OSError, IndexError):
        return True


def running_pid(history: RunHistory) -> int | None:
    """The process of the newest launch or start in `history` while it is alive, else None."""
    last = history.lifecycle
    return last.pid if isinstance(last, (Launched, Started)) and pid_alive(last.pid) else None


def new_run(config: RunConfig, run_dir: Path | None = None) -> RunDir:
    """Create a run directory with its config.yaml; the name says when and what."""
    stem = Path(config.model).stem if config.model.endswith(".gguf") else config.model.rsplit("/", 1)[-1]
    run = RunDir(new_folder(run_dir, stem, "pick a new --run-dir, or resume it with `tuneforge train --resume`"))
    run.save_config(config)
    return run


def new_folder(folder: Path | None, stem: str, hint: str) -> Path:
    """An empty folder for a new run or shrink: `folder`, else TUNEFORGE_HOME/runs/<time>-<stem>; refused,
    with `hint`, when it already holds something."""
    if folder is None:
        folder = runs_dir() / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{_slug(stem)}"
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder}: already exists and is not empty", hint)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text.lower()).strip("-") or "run"


def list_runs() -> list[RunDir]:
    """Every run directory under TUNEFORGE_HOME/runs, newest first."""
    root = runs_dir()
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if (p / "config.yaml").is_file()]
    return sorted(runs, key=lambda run: run.config_file.stat().st_mtime, reverse=True)
