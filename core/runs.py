"""The run directory contract: config.yaml, events.jsonl, train.log, checkpoints/, adapter/, merged/, export/.

A run directory is the only state of a run; everything in it is a file a person can read.
`RunDir` names its parts, appends events, and derives the run's state from them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .distributed import process_rank
from .errors import ConfigError
from .paths import runs_dir

if TYPE_CHECKING:  # pydantic takes a quarter second to import; the TUI lists runs without it
    from .config import RunConfig

COMPLETE_MARKER = "tuneforge-complete"
"""Written into a checkpoint folder after the trainer finished saving it."""
BASE_RECORD = "tuneforge-base.json"
"""Written beside a trained adapter (or full model): which base model it belongs to."""
LIFECYCLE_EVENTS = ("launched", "started", "stopped", "failed", "finished")
"""The events that change whether a run is training; the newest one decides its state."""
EVERY_RANK_EVENTS = ("started", "failed")
"""What each process of a distributed run reports for itself; everything else comes from rank 0 alone."""


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

    def append_event(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event line to events.jsonl, flushed so a tailing reader sees it at once.

        In a distributed run every process appends to the same file (each line is one write
        to a file opened for appending, so lines never interleave): rank 0 everything, the
        other ranks only their own `started` and `failed`, tagged with their rank.
        """
        record = {"time": round(time.time(), 3), "event": event, **fields}
        rank = process_rank()
        if rank:
            if event not in EVERY_RANK_EVENTS:
                return record
            record["rank"] = rank
        with self.events_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()
        return record

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event so far; a half-written last line (a crash mid-write) is skipped."""
        if not self.events_file.is_file():
            return
        with self.events_file.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint the trainer finished writing (half-written ones are skipped)."""
        if not self.checkpoints.is_dir():
            return None
        complete = [p for p in self.checkpoints.glob("checkpoint-*") if (p / COMPLETE_MARKER).is_file()]
        return max(complete, key=lambda p: int(p.name.rsplit("-", 1)[1]), default=None)

    def checkpoint_to_train_from(self, resume: bool) -> Path | None:
        """The checkpoint a resume continues from (None for a fresh start); a ConfigError when a resume
        has nothing to continue, or a fresh start would overwrite what this run already trained."""
        checkpoint = self.last_checkpoint()
        if resume and checkpoint is None:
            raise ConfigError(f"{self.path}: no complete checkpoint to resume from", f"start it again with `tuneforge train {self.path}`")
        if not resume and (checkpoint is not None or self.adapter.exists() or self.merged.exists()):
            raise ConfigError(f"{self.path}: this run already trained",
                              f"continue it with `tuneforge train --resume {self.path}`, or start a new run")
        return checkpoint if resume else None

    def last_lifecycle_event(self) -> dict[str, Any]:
        """The newest launched, started, stopped, failed or finished event ({} for a fresh run)."""
        last: dict[str, Any] = {}
        for event in self.events():
            if event["event"] in LIFECYCLE_EVENTS:
                last = event
        return last

    def training_pid(self) -> int | None:
        """The process id of the training child while it runs (launched or started), else None."""
        last = self.last_lifecycle_event()
        pid = last.get("pid") if last.get("event") in ("launched", "started") else None
        return pid if pid and _pid_alive(pid) else None

    def training_processes(self) -> list[int]:
        """The live training processes of the latest launch: every rank that reported `started`
        (a distributed run has one per GPU), else the launched child itself."""
        launched: list[int] = []
        started: list[int] = []
        for event in self.events():
            if event["event"] == "launched":
                launched, started = [event["pid"]], []
            elif event["event"] == "started":
                started.append(event["pid"])
        return [pid for pid in (started or launched) if _pid_alive(pid)]

    def state(self) -> str:
        """created, running, stopped, failed, trained, merged, exported or export failed — read off the files.

        A run whose child was launched (or started training) but whose process is gone
        without a final event died hard (killed, out of memory): that is `failed`.
        """
        last = self.last_lifecycle_event()
        kind = last.get("event")
        if kind in ("launched", "started"):
            return "running" if last.get("pid") and _pid_alive(last["pid"]) else "failed"
        if kind == "finished":
            from tuneforge.exporters.report import passed_files

            if passed_files(self.export):  # a GGUF counts once it passed verification
                return "exported"
            if self.last_export_failure():
                return "export failed"
            return "merged" if (self.merged / "config.json").is_file() else "trained"
        return kind or "created"

    def last_export_failure(self) -> str | None:
        """Why the latest export failed verification (a crash of llama.cpp included); None when it passed or none ran."""
        last = None
        for event in self.events():
            if event["event"] == "exported":
                last = event
        return None if last is None or last.get("passed", True) else last.get("error", "a file failed verification")


class LineTail:
    """Reads a growing text file incrementally: each `read()` returns the lines completed since the last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[str]:
        """New complete lines; a line still being written waits for the next call."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines]


class EventTail:
    """Reads a run's events.jsonl incrementally, as a live view polls it while the child appends."""

    def __init__(self, run: RunDir) -> None:
        self._lines = LineTail(run.events_file)

    def read(self) -> list[dict[str, Any]]:
        """The events appended since the last call."""
        events = []
        for line in self._lines.read():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


def failure_cause(run: RunDir, returncode: int | None = None) -> tuple[str, str]:
    """Why a run stopped or failed, as (message, hint): its last stopped/failed event, or else —
    for a child that died before it could say (killed, out of memory) — what its exit, the
    kernel's out-of-memory count and the last lines of its train.log tell."""
    last = run.last_lifecycle_event()
    if last.get("event") in ("stopped", "failed"):
        return last.get("error", "stopped"), last.get("hint") or ""
    if run.last_checkpoint() is not None:
        resume = f"resume from the last checkpoint with `tuneforge train --resume {run.path}`"
    else:
        resume = f"no checkpoint was saved yet; start again with `tuneforge train {run.path}`"
    kills_then, kills_now = last.get("oom_kills"), oom_kills()
    # No final event and the kernel killed for memory meanwhile: a launcher (torchrun) exits 1 when it
    # loses a worker that way, so the exit code alone cannot tell.
    if kills_then is not None and kills_now is not None and kills_now > kills_then:
        used = _last_step_memory(run)
        detail = f": its last step used {used:.1f} GB of this machine's {_total_ram_gb():.1f} GB" if used else ""
        return (f"the training process was killed by the out-of-memory killer{detail}",
                f"lower batch_size or max_length in config.yaml, or use --method qlora; then {resume}")
    tail = run.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-20:] if run.log_file.is_file() else []
    said = [index for index, line in enumerate(tail) if line.startswith("error: ")]
    if said:  # it failed before it started training, and said why on stderr (train.log)
        after = tail[said[-1] + 1] if said[-1] + 1 < len(tail) else ""
        return tail[said[-1]].removeprefix("error: "), after.removeprefix("hint: ") if after.startswith("hint: ") else resume
    how = f"was killed by {signal.Signals(-returncode).name}" if returncode is not None and returncode < 0 else "ended without a word"
    words = " / ".join(line.strip() for line in tail[-3:] if line.strip())
    return f"the training process {how}" + (f"; the end of train.log: {words}" if words else ""), resume


def record_death(run: RunDir, returncode: int | None = None) -> dict[str, Any] | None:
    """Write the `failed` event a killed child could not write (once); None while it runs or when it said why."""
    last = run.last_lifecycle_event()
    if last.get("event") not in ("launched", "started") or (last.get("pid") and _pid_alive(last["pid"])):
        return None
    message, hint = failure_cause(run, returncode)
    return run.append_event("failed", error=message, hint=hint, returncode=returncode)


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has killed since boot (Linux), else None."""
    try:
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _last_step_memory(run: RunDir) -> float | None:
    steps = [e for e in run.events() if e.get("event") == "step"]
    return steps[-1].get("memory_gb") if steps else None


def _total_ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


def _pid_alive(pid: int) -> bool:
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


def new_run(config: RunConfig, run_dir: Path | None = None) -> RunDir:
    """Create a run directory with its config.yaml; the name says when and what."""
    if run_dir is None:
        stem = Path(config.model).stem if config.model.endswith(".gguf") else config.model.rsplit("/", 1)[-1]
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = runs_dir() / f"{stamp}-{_slug(stem)}"
    run_dir = Path(run_dir).expanduser().resolve()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir}: already exists and is not empty", "pick a new --run-dir, or resume it with `tuneforge train --resume`")
    run_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(run_dir)
    run.save_config(config)
    return run


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in text.lower()).strip("-") or "run"


def list_runs() -> list[RunDir]:
    """Every run directory under TUNEFORGE_HOME/runs, newest first."""
    root = runs_dir()
    if not root.is_dir():
        return []
    runs = [RunDir(p) for p in root.iterdir() if (p / "config.yaml").is_file()]
    return sorted(runs, key=lambda run: run.config_file.stat().st_mtime, reverse=True)


def last_metrics(run: RunDir) -> dict[str, Any]:
    """The latest step's figures and the latest eval loss, for listings."""
    metrics: dict[str, Any] = {}
    for event in run.events():
        if event["event"] == "step":
            metrics.update(step=event.get("step"), loss=event.get("loss"), max_steps=event.get("max_steps"))
        elif event["event"] == "eval":
            metrics["eval_loss"] = event.get("eval_loss")
    return metrics
