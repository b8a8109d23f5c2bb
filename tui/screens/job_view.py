"""What a run's and a shrink's live views share: tailing the job's events and log, its state in the title,
why it ended, Stop, and starting a job (a resume, a shrink) in a worker.

Both kinds are jobs (`core/jobs.py`): a folder whose events say what runs in it. The views poll those
files, so they work the same for a job this app started and for one they re-attach to after the app
was closed and opened again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.widgets import Button
from textual.worker import Worker

from tuneforge.core.events import LineTail, RunHistory
from tuneforge.core.jobs import JobDir, stop
from tuneforge.core.progress import duration

from ..base import TuneforgeScreen
from ..errors import in_app_words
from ..widgets import WrappedLog

POLL_SECONDS = 0.5

STATE_STYLES = {"running": "bold yellow", "failed": "bold red", "stopped": "yellow", "export failed": "bold red"}
"""How a state reads in a title; any other (finished, trained, exported …) is green."""


def eta(history: RunHistory, now: float) -> float | None:
    """Seconds left at the pace since the latest (re)start; None before its first step."""
    last, started = history.last_step, history.started
    if last is None or started is None or history.first_step is None:
        return None
    done = last.step - history.first_step
    return (now - started.time) / max(done, 1) * (last.max_steps - last.step)


def progress_summary(history: RunHistory, now: float, running: bool) -> str:
    """step 12/30 · epoch 2.1 · ETA 1m20s · 105 tok/s · 2.8 GB (plan 2.9) · loss 0.53 · eval 0.61; before the first
    step, the base model's download (bytes of the total) while one runs."""
    last = history.last_step
    if last is None:
        download = history.download
        if running and download and not download.done:  # not done: some bytes are still to come
            return (f"downloading {download.model}: {download.done_bytes / 2**30:.2f} of {download.total_bytes / 2**30:.2f} GB"
                    f" ({download.done_bytes / download.total_bytes:.0%}) …")
        return "waiting for the first step (loading the model) …" if running else "no training steps yet"
    parts = [f"step {last.step}/{last.max_steps}", f"epoch {last.epoch:.1f}"]
    left = eta(history, now) if running else None
    if left is not None:
        parts.append(f"ETA {duration(left)}")
    planned = f" (plan {history.plan.peak_gb:.1f})" if history.plan and history.plan.peak_gb else ""
    parts += [f"{last.tokens_per_second:.0f} tok/s", f"{last.memory_gb or 0:.1f} GB{planned}", f"loss {last.loss:.3f}"]
    if history.last_eval_loss is not None:
        parts.append(f"eval {history.last_eval_loss:.3f}")
    return " · ".join(parts)


def state_title(words: str, state: str) -> Text:
    """A view's title line: `words`, then the state in its colour."""
    title = Text(f"{words} · ")
    title.append(state, style=STATE_STYLES.get(state, "bold green"))
    return title


@dataclass
class JobStarted(Message):
    """A worker started a job's child: `job` resumed, or a new job (a shrink of this run)."""

    job: JobDir
    child: subprocess.Popen


class JobScreen(TuneforgeScreen):
    """The live view of a job: polls its events and log, redraws on change, Stop, and a worker that starts jobs.

    A subclass composes the widgets `#title`, `#figures`, `#train-log` and the buttons `#stop` and `#resume`,
    and draws the rest in `redraw`.
    """

    KIND = "job"
    """What the job is in a notice's title ("training stopped")."""
    STOPPING = "Stopping: a checkpoint is saved at the end of this step."
    NOT_RUNNING = "This job is not running."
    REDRAW_EVERY_POLL = False
    """Redraw on every poll, not only when the job's events or state changed."""

    def __init__(self, job: JobDir) -> None:
        super().__init__()
        self.job = job
        self.history = RunHistory(job.events_file)
        """The job's events folded; each poll reads only the lines appended since the last."""
        self.log_lines = LineTail(job.log_file)
        self.state = ""

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(POLL_SECONDS, self.poll)

    def poll(self) -> None:
        """Fold in new events and log lines; redraw what changed."""
        self.tuneforge.session.reap_children()
        events = self.history.refresh()
        lines = [line for line in self.log_lines.read() if line.strip()]
        if lines:
            self.query_one("#train-log", WrappedLog).write_lines(lines)
        state = self.read_state()
        if events or state != self.state or self.REDRAW_EVERY_POLL:
            self.redraw(state, changed=state != self.state)
        self.state = state

    def read_state(self) -> str:
        """The job's state now (from the history this view holds)."""
        return self.job.state(self.history)

    def redraw(self, state: str, changed: bool) -> None:
        """Draw the view for `state`; `changed` when it is not the state of the last poll."""
        raise NotImplementedError

    def ended(self, figures: Text, state: str, changed: bool) -> None:
        """Why a stopped or failed job ended, with its hint in the app's words, under `figures`; a notice when it
        ended while this view watched."""
        if state not in ("failed", "stopped"):
            return
        message, hint = self.job.why_it_ended(self.history)
        figures.append(f"\n{message}", style="red" if state == "failed" else "yellow")
        if hint:
            figures.append(f"\nhint: {in_app_words(hint)}", style="dim")
        if changed and self.state == "running":
            self.notify(message, title=f"{self.KIND} {state}", severity="error" if state == "failed" else "warning", markup=False)

    def show_buttons(self, running: bool, can_resume: bool) -> None:
        """Stop while the job runs; Resume when it can continue."""
        self.query_one("#stop", Button).disabled = not running
        self.query_one("#resume", Button).disabled = not can_resume

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        """Ask the job's processes to checkpoint and exit (at the end of the current step)."""
        if stop(self.job):
            self.notify(self.STOPPING)
        else:
            self.notify(self.NOT_RUNNING, severity="warning")

    @work(thread=True, exclusive=True, exit_on_error=False, group="start")
    def start_job(self, start: Callable[[], tuple[JobDir, subprocess.Popen]]) -> None:
        """Run `start` (which checks, creates and launches) off the UI thread; a refusal is shown with its hint."""
        self.post_message(JobStarted(*start()))

    def worker_failed(self, worker: Worker) -> None:
        self.redraw(self.state, changed=False)

    def on_job_started(self, message: JobStarted) -> None:
        if message.job != self.job:  # a new job (a shrink of this run): its own view
            self.tuneforge.follow_job(message.job, message.child)
            return
        self.tuneforge.session.children[message.job] = message.child
        self.poll()

