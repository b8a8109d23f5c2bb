"""Every event a run records in its events.jsonl: one dataclass per kind, one writer, one folding reader.

events.jsonl is the run's history, one JSON object per line, `{"time": …, "event": KIND, …fields}`,
appended by whoever does the work (the parent that starts training, the training child, merge, export) and read by
everyone who shows a run (`tuneforge runs`, `tuneforge train`, the app's Home and run view). A
reader skips a half-written last line, lines of kinds it does not know and fields it does not
know, so a run directory written by another version of tuneforge still reads.

`RunHistory` folds the events into what those readers show; its `refresh()` reads only the
lines appended since the last call, so a live view that polls costs one small read per poll.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from time import time as now
from typing import Any, ClassVar

from .rank import process_rank


@dataclass
class TrainResult:
    """The figures a finished run reports in its `finished` event."""

    steps: int
    final_loss: float
    eval_loss: float | None
    runtime_s: float
    tokens_per_second: float
    trainable_params: int
    total_params: int
    peak_memory_gb: float
    planned_peak_gb: float | None = None
    """The memory plan's peak for this run (None when the model's dimensions are unknown)."""
    method: str = ""
    eval_accuracy: float | None = None
    """Held-out accuracy: next-token accuracy on answers (SFT, distill) or chosen-over-rejected (dpo, orpo, reward)."""
    accuracy_of: str | None = None
    general_perplexity_before: float | None = None
    """Perplexity on general text before training, and after (the forgetting probe); None when not measured."""
    general_perplexity_after: float | None = None
    general_known: int | None = None
    """Everyday questions the base answered right (general_answers.py); None when not asked."""
    general_kept: int | None = None
    """Of those, the ones the tuned model still answers right."""
    replay_examples: int = 0
    """The base's own general answers that trained beside the data (replay)."""


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event carries: when it was recorded and, in a distributed run, by which process."""

    kind: ClassVar[str] = ""
    every_rank: ClassVar[bool] = False
    """Each process of a distributed run records this kind for itself; rank 0 alone records the others."""
    lifecycle: ClassVar[bool] = False
    """This kind changes whether the run is training; the newest such event decides the run's state."""

    time: float = 0.0
    rank: int = 0

    def to_record(self) -> dict[str, Any]:
        """The JSON object of this event's line."""
        record: dict[str, Any] = {"time": self.time, "event": self.kind}
        record.update((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in ("time", "rank"))
        if self.rank:
            record["rank"] = self.rank
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        """The event in a line's JSON object (unknown fields ignored, missing ones at their defaults)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in names})


@dataclass(frozen=True, kw_only=True)
class Launched(Event):
    """The training child was started (before it imported anything): the run is running from now on."""

    kind: ClassVar[str] = "launched"
    lifecycle: ClassVar[bool] = True
    pid: int = 0
    oom_kills: int | None = None
    """The kernel's out-of-memory kill count then: a higher count later, with no final event, means it was killed."""
    command: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Started(Event):
    """A training process began (or resumed) training; one per process of a distributed run."""

    kind: ClassVar[str] = "started"
    every_rank: ClassVar[bool] = True
    lifecycle: ClassVar[bool] = True
    pid: int = 0
    oom_kills: int | None = None
    method: str = ""
    model: str = ""
    device: str = ""
    resume_from: str | None = None


@dataclass(frozen=True, kw_only=True)
class Planned(Event):
    """The memory plan and the batch split auto-fit settled on, before the model loads."""

    kind: ClassVar[str] = "plan"
    device: str = ""
    parts: dict[str, float] = field(default_factory=dict)
    peak_gb: float | None = None
    reserve_gb: float | None = None
    budget_gb: float | None = None
    verdict: str = ""
    batch_size: int | None = None
    grad_accum: int | None = None
    max_length: int | None = None
    gradient_checkpointing: bool | None = None
    checkpoint_every: int | None = None
    changes: list[str] = field(default_factory=list)
    allocator: str | None = None


@dataclass(frozen=True, kw_only=True)
class Downloading(Event):
    """The base model is being downloaded from the hub, before it loads: bytes written so far of the total."""

    kind: ClassVar[str] = "download"
    model: str = ""
    done_bytes: int = 0
    total_bytes: int = 0

    @property
    def done(self) -> bool:
        """Every byte is written (none were needed, when the cache held them all)."""
        return self.done_bytes >= self.total_bytes


@dataclass(frozen=True, kw_only=True)
class Step(Event):
    """A logged optimizer step: its loss, speed and memory."""

    kind: ClassVar[str] = "step"
    step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    loss: float = 0.0
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_second: float = 0.0
    memory_gb: float | None = None
    reward: float | None = None
    """GRPO: the mean weighted reward of the step's sampled answers."""
    rewards: dict[str, float] | None = None
    """GRPO: each reward's mean over the step's sampled answers, by the reward's name."""
    kl: float | None = None
    """GRPO: the mean KL of the sampled answers from the base's (when beta is above 0)."""


@dataclass(frozen=True, kw_only=True)
class Sampled(Event):
    """Some answers a GRPO step sampled, with each reward's score of them: what a person reads to see what is rewarded."""

    kind: ClassVar[str] = "sampled"
    step: int = 0
    prompts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    rewards: dict[str, list[float | None]] = field(default_factory=dict)
    """Each reward's score of each answer (None where it scores nothing, such as a prompt without a reference)."""


@dataclass(frozen=True, kw_only=True)
class Evaluated(Event):
    """The loss on the held-out split at a step."""

    kind: ClassVar[str] = "eval"
    step: int = 0
    eval_loss: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Recalled(Event):
    """How many of the checked training answers came back word for word at the end of an epoch."""

    kind: ClassVar[str] = "recall"
    step: int = 0
    recalled: int = 0
    checked: int = 0


@dataclass(frozen=True, kw_only=True)
class CheckpointSaved(Event):
    """A checkpoint folder was written completely: a resume can start from it."""

    kind: ClassVar[str] = "checkpoint"
    step: int = 0
    path: str = ""


@dataclass(frozen=True, kw_only=True)
class Warned(Event):
    """Something the person should know that did not stop the run (overfitting, a later shortfall, a changed resume)."""

    kind: ClassVar[str] = "warning"
    error: str = ""
    hint: str = ""
    step: int | None = None


@dataclass(frozen=True, kw_only=True)
class Stopped(Event):
    """Training stopped on request (after a checkpoint, or aborted without one)."""

    kind: ClassVar[str] = "stopped"
    lifecycle: ClassVar[bool] = True
    error: str = "stopped"
    hint: str = ""


@dataclass(frozen=True, kw_only=True)
class Failed(Event):
    """Training failed: said by the child itself, or recorded for it when it died without a word."""

    kind: ClassVar[str] = "failed"
    every_rank: ClassVar[bool] = True
    lifecycle: ClassVar[bool] = True
    error: str = ""
    hint: str = ""
    returncode: int | None = None


@dataclass(frozen=True, kw_only=True)
class Finished(Event):
    """Training finished; its figures are the run's TrainResult (stored flat in the line)."""

    kind: ClassVar[str] = "finished"
    lifecycle: ClassVar[bool] = True
    result: TrainResult | None = None
    """None for a line whose figures are incomplete."""

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"time": self.time, "event": self.kind}
        if self.result is not None:
            record.update((f.name, getattr(self.result, f.name)) for f in fields(self.result))
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Finished:
        names = {f.name for f in fields(TrainResult)}
        try:
            result = TrainResult(**{key: value for key, value in record.items() if key in names})
        except TypeError:  # a required figure is missing
            result = None
        return cls(time=record.get("time", 0.0), result=result)


@dataclass(frozen=True, kw_only=True)
class Merged(Event):
    """The adapter was merged into the base: merged/ holds a full model."""

    kind: ClassVar[str] = "merged"
    path: str = ""
    dtype: str = ""


@dataclass(frozen=True, kw_only=True)
class Exported(Event):
    """GGUF files were written and verified; `error` says which failed and why."""

    kind: ClassVar[str] = "exported"
    files: list[str] = field(default_factory=list)
    passed: bool = True
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Shrunk(Event):
    """A shrink stage finished: layers were removed and the smaller model healed (in a shrink directory's events)."""

    kind: ClassVar[str] = "shrink"
    stage: int = 0
    layers: int = 0
    removed: list[int] = field(default_factory=list)
    """The removed layers' indices in the stage's starting model."""
    scores: list[float] = field(default_factory=list)
    """Every layer's block influence in the stage's starting model (the lowest went)."""
    parameters: int = 0
    steps: int = 0
    """Healing steps."""
    eval_loss: float | None = None
    accuracy: float | None = None
    """Share of the questions whose answer contains the reference (the eval split, else the training data)."""
    accuracy_of: str = ""
    perplexity: float | None = None
    """The forgetting probe's general-text perplexity after healing."""
    model: str = ""
    """The stage's model folder (its merged weights)."""


KINDS: dict[str, type[Event]] = {cls.kind: cls for cls in (
    Launched, Started, Planned, Downloading, Step, Sampled, Evaluated, Recalled, CheckpointSaved, Warned, Stopped, Failed, Finished, Merged, Exported,
    Shrunk)}
"""Each kind's name in events.jsonl and its class."""


def parse_event(line: str) -> Event | None:
    """The event on one line of events.jsonl; None for a half-written line or a kind this version does not know."""
    try:
        record = json.loads(line)
        return KINDS[record["event"]].from_record(record)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def append_event(events_file: Path, event: Event) -> Event:
    """Record `event` (stamped with the time and this process's rank) at the end of `events_file`.

    The line is flushed at once so a tailing reader sees it. In a distributed run every process
    appends to the same file — each line is one write to a file opened for appending, so lines
    never interleave — rank 0 everything, the other ranks only their own every-rank kinds.
    Returns the stamped event.
    """
    event = replace(event, time=round(now(), 3), rank=process_rank())
    if event.rank and not event.every_rank:
        return event
    with events_file.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(event.to_record(), default=str) + "\n")
        handle.flush()
    return event


class LineTail:
    """Reads a growing text file incrementally: each `read()` returns the lines completed since the last."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.restarted = False
        """The last `read()` found the file shorter than before (replaced): it read it from the start."""

    def read(self) -> list[str]:
        """New complete lines; a line still being written waits for the next call."""
        try:
            with self.path.open("rb") as handle:
                self.restarted = os.fstat(handle.fileno()).st_size < self._offset
                if self.restarted:
                    self._offset, self._partial = 0, b""
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines]


class RunHistory:
    """A run's events folded into what its readers show: where training stands, its figures, its last export."""

    def __init__(self, events_file: Path) -> None:
        self._lines = LineTail(events_file)
        self._clear()

    def _clear(self) -> None:
        self.events: list[Event] = []
        self.lifecycle: Event | None = None
        """The newest launched, started, stopped, failed or finished event."""
        self._launched_pid: list[int] = []
        self._started_pids: list[int] = []
        self.started: Started | None = None
        self.plan: Planned | None = None
        self.download: Downloading | None = None
        """The newest report of the base model's download."""
        self.steps: list[Step] = []
        self.samples: list[Sampled] = []
        self.evals: list[Evaluated] = []
        self.first_step: int | None = None
        """The step the latest (re)start continued from: the pace since then gives the ETA."""
        self.finished: Finished | None = None
        self.exported: Exported | None = None

    @classmethod
    def read(cls, events_file: Path) -> RunHistory:
        """The history of everything recorded so far."""
        history = cls(events_file)
        history.refresh()
        return history

    def refresh(self) -> list[Event]:
        """Fold in the events appended since the last call (only those lines are read); returns them."""
        lines = self._lines.read()
        if self._lines.restarted:  # the file was replaced: fold it again from its start
            self._clear()
        new = [event for event in map(parse_event, lines) if event is not None]
        for event in new:
            self._add(event)
        self.events.extend(new)
        return new

    def _add(self, event: Event) -> None:
        if event.lifecycle:
            self.lifecycle = event
        if isinstance(event, Launched):
            self._launched_pid, self._started_pids = [event.pid], []
        elif isinstance(event, Started):
            self.started, self.first_step = event, None
            self._started_pids.append(event.pid)
        elif isinstance(event, Step):
            self.steps.append(event)
            if self.first_step is None:
                self.first_step = event.step - 1
        elif isinstance(event, Sampled):
            self.samples.append(event)
        elif isinstance(event, Evaluated):
            self.evals.append(event)
        elif isinstance(event, Planned):
            self.plan = event
        elif isinstance(event, Downloading):
            self.download = event
        elif isinstance(event, Finished):
            self.finished = event
        elif isinstance(event, Exported):
            self.exported = event

    @property
    def training_pids(self) -> list[int]:
        """The processes of the latest launch: every rank that reported `started`, else the launched child."""
        return list(self._started_pids or self._launched_pid)

    @property
    def last_step(self) -> Step | None:
        """The newest logged step."""
        return self.steps[-1] if self.steps else None

    @property
    def last_eval_loss(self) -> float | None:
        """The newest held-out loss."""
        return self.evals[-1].eval_loss if self.evals else None
