"""A background job: a folder whose events say what runs in it, started detached and stopped with SIGINT.

Runs (`core/runs.py`, `RunDir`: a training child) and shrinks (`core/shrink/job.py`, `ShrinkDir`: a
child that prunes and heals stage after stage) are the two kinds. What they share lives here once:

- the folder: its marker file (what makes a folder this kind of job), events.jsonl and a log;
- the launch: a child in its own session, so that whoever started it survives whatever ends it and
  closing the terminal or the app does not stop it, with a `launched` event that marks the job
  running before the child has imported anything;
- the stop: SIGINT to the job's processes, on which they checkpoint and record `stopped`;
- the state folded from the lifecycle events, why it ended, and listing every job of a kind.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, ClassVar, TypeVar

from .errors import ConfigError
from .events import Event, Failed, Launched, RunHistory, Started, Stopped, append_event
from .paths import runs_dir

Job = TypeVar("Job", bound="JobDir")


@dataclass(frozen=True)
class JobDir:
    """A job's folder: its events, its log, whether its process lives, its state."""

    path: Path
    MARKER: ClassVar[str] = ""
    """The file every job of this kind holds from its creation (config.yaml, shrink.json)."""
    LOG: ClassVar[str] = ""
    """The child's output, in the folder."""
    WHAT: ClassVar[str] = "job"
    """The job's process in words ("the training process")."""

    @property
    def name(self) -> str:
        """The folder's name."""
        return self.path.name

    @property
    def events_file(self) -> Path:
        """JOB/events.jsonl."""
        return self.path / "events.jsonl"

    @property
    def log_file(self) -> Path:
        """The child's output (train.log, shrink.log)."""
        return self.path / self.LOG

    def record(self, event: Event) -> Event:
        """Append `event` to events.jsonl (stamped with the time; see `events.append_event`); returns it."""
        return append_event(self.events_file, event)

    def history(self) -> RunHistory:
        """Everything recorded in events.jsonl so far, folded (`RunHistory.refresh()` then reads only what follows)."""
        return RunHistory.read(self.events_file)

    def pid(self, history: RunHistory | None = None) -> int | None:
        """The job's process while it runs (launched or started), else None."""
        return running_pid(history or self.history())

    def processes(self) -> list[int]:
        """The live processes Stop signals."""
        pid = self.pid()
        return [pid] if pid else []

    def state(self, history: RunHistory | None = None) -> str:
        """created, running, stopped or failed, read off the lifecycle events: a job launched (or started) whose
        process is gone without a final event died hard (killed, out of memory), which is `failed`."""
        last = (history or self.history()).lifecycle
        if isinstance(last, (Launched, Started)):
            return "running" if pid_alive(last.pid) else "failed"
        return "created" if last is None else last.kind

    def why_it_ended(self, history: RunHistory | None = None) -> tuple[str, str]:
        """(message, hint) of a stopped or failed job: its own words, or, when its process died without any,
        that it died and where its output is."""
        last = (history or self.history()).lifecycle
        if isinstance(last, (Stopped, Failed)):
            return last.error or "stopped", last.hint
        return f"{self.WHAT} ended without a word (see {self.log_file})", self.resume_hint()

    def resume_hint(self) -> str:
        """How to continue the job after it stopped."""
        raise NotImplementedError


def launch(job: JobDir, command: list[str], env: dict[str, str] | None = None, stdout: int | IO[str] | None = None) -> subprocess.Popen:
    """Start `command` for `job` in its own session, in the job's folder, with its stderr appended to the job's log
    (and its stdout too, unless `stdout` says where it goes), and record the `launched` event.

    The child runs under PyTorch's allocator settings and tcmalloc (`allocator.training_environment`), without
    progress bars (the events have the progress), unbuffered, with `env` added to this process's environment.
    """
    from .allocator import training_environment

    environment = training_environment({**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1", **(env or {})})
    with job.log_file.open("ab") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log if stdout is None else stdout,
                                 stderr=log, text=True, start_new_session=True, cwd=job.path, env=environment)
    job.record(Launched(pid=child.pid, oom_kills=oom_kills(), command=command))
    return child


def refuse_if_running(job: JobDir) -> None:
    """A ConfigError when the job's process is alive: it cannot be started twice."""
    if job.pid() is not None:
        raise ConfigError(f"{job.path}: {job.WHAT} is still running", "watch it, or stop it before starting it again")


def stop(job: JobDir) -> bool:
    """Ask every process of the job to checkpoint and exit (SIGINT); False when none is running."""
    signalled = False
    for pid in job.processes():
        try:
            os.kill(pid, signal.SIGINT)
            signalled = True
        except ProcessLookupError:
            continue
    return signalled


def list_jobs(kind: type[Job]) -> list[Job]:
    """Every job of `kind` under TUNEFORGE_HOME/runs, the newest (by its marker file) first."""
    root = runs_dir()
    if not root.is_dir():
        return []
    found = [path / kind.MARKER for path in root.iterdir() if (path / kind.MARKER).is_file()]
    return [kind(marker.parent) for marker in sorted(found, key=lambda marker: marker.stat().st_mtime, reverse=True)]


def new_folder(folder: Path | None, stem: str, hint: str) -> Path:
    """An empty folder for a new job: `folder`, else TUNEFORGE_HOME/runs/<time>-<stem>; refused, with `hint`,
    when it already holds something."""
    if folder is None:
        folder = runs_dir() / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{_slug(stem)}"
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder}: already exists and is not empty", hint)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text.lower()).strip("-") or "run"


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


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has killed since boot (Linux), else None."""
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
