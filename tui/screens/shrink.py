"""A shrink's live view in the app (the form that plans one is `shrink_form.py`).

The shrink runs as its own child process (`python -m tuneforge.core.shrink SHRINK_DIR`), like
training, so closing the app does not stop it; the view tails SHRINK_DIR/events.jsonl, the
current stage's events and shrink.log. Stop asks the healing run to checkpoint; Resume continues
the stage from that checkpoint. A finished stage is a run: Open shows it, with Export, Evaluate
and Chat.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Header, ProgressBar, Static

from tuneforge.core.api import shrink as shrink_api
from tuneforge.core.api.shrink import ShrinkDir, stages_table
from tuneforge.core.events import RunHistory

from ..widgets import KeyFooter, Plain, WrappedLog
from .job_view import JobScreen, progress_summary, state_title


class ShrinkScreen(JobScreen):
    """The live view of a shrink: every finished stage's figures, the current stage's healing, Stop and Resume."""

    KIND = "shrink"
    STOPPING = "Stopping: the healing run saves a checkpoint at the end of this step."
    NOT_RUNNING = "This shrink is not running."
    REDRAW_EVERY_POLL = True
    """The current stage's healing moves in its own run's events, not the shrink's."""

    BINDINGS = [
        Binding("escape", "app.home", "Home"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("o", "open_stage", "Open smallest"),
    ]

    def __init__(self, shrink: ShrinkDir) -> None:
        super().__init__(shrink)
        self.shrink = shrink
        self.plan = shrink.plan()
        self.stage_history: tuple[int, RunHistory] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Plain("", id="shrink-title", classes="step")
        yield ProgressBar(id="progress", show_eta=False)
        yield Plain("", id="figures")
        yield Plain("", id="stages")
        yield WrappedLog(id="train-log")
        with Horizontal(classes="buttons"):
            yield Button("Stop", id="stop", variant="error", compact=True)
            yield Button("Resume", id="resume", variant="warning", compact=True)
            yield Button("Open smallest", id="open-stage", variant="success", compact=True)
        yield KeyFooter()

    def _current_stage(self, finished: int) -> tuple[int, RunHistory] | None:
        """The stage being healed (the first unfinished one whose run exists), with its events folded."""
        number = finished + 1
        if number > self.plan.stages or not self.shrink.stage(number).events_file.is_file():
            return None
        if self.stage_history is None or self.stage_history[0] != number:
            self.stage_history = (number, RunHistory(self.shrink.stage(number).events_file))
        self.stage_history[1].refresh()
        return self.stage_history

    def redraw(self, state: str, changed: bool) -> None:
        finished = self.shrink.finished_stages(self.history)
        words = f"{self.shrink.path.name} · {self.plan.source} · {' → '.join(map(str, self.plan.layers))} layers"
        self.query_one("#shrink-title", Static).update(state_title(words, state))
        figures = Text(f"{len(finished)} of {self.plan.stages} stages finished")
        current = self._current_stage(len(finished))
        if current is not None and state != "finished":
            number, history = current
            figures.append(f"\nstage {number} ({self.plan.layers[number]} layers): "
                           f"{progress_summary(history, time.time(), state == 'running')}")
            if history.last_step:
                self.query_one("#progress", ProgressBar).update(total=history.last_step.max_steps, progress=history.last_step.step)
        self.ended(figures, state, changed)
        if state == "finished" and changed and self.state == "running":
            self.notify("Shrink finished. Press o to open the smallest model (export, evaluate, chat).", title="done")
        self.query_one("#figures", Static).update(figures)
        self.query_one("#stages", Static).update(stages_table(self.plan, finished) if finished else "")
        self.show_buttons(state == "running", can_resume=state in ("stopped", "failed"))
        self.query_one("#open-stage", Button).disabled = not finished

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        """Continue where it stopped (the stage from its last checkpoint), in a new child."""
        if self.state not in ("stopped", "failed"):
            return
        self.query_one("#resume", Button).disabled = True
        self.notify("Resuming the shrink …")
        self.start_job(lambda: (self.shrink, shrink_api.resume(self.shrink)))

    @on(Button.Pressed, "#open-stage")
    def action_open_stage(self) -> None:
        """The smallest finished stage's run view: export, evaluate and chat from there."""
        finished = self.shrink.finished_stages()
        if finished:
            self.tuneforge.open_run(self.shrink.stage(finished[-1].stage))
