"""Shrinking a finished run in the app: the form that plans it, and the live view of its stages.

The shrink runs as its own child process (`python -m tuneforge.core.shrink SHRINK_DIR`), like
training, so closing the app does not stop it; the view tails SHRINK_DIR/events.jsonl, the
current stage's events and shrink.log. Stop asks the healing run to checkpoint; Resume continues
the stage from that checkpoint. A finished stage is a run: Open shows it, with Export, Evaluate
and Chat.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Header, Input, Label, ProgressBar, Static

from tuneforge.core.events import LineTail, RunHistory
from tuneforge.core.runs import RunDir
from tuneforge.core.shrink.job import ShrinkDir, model_layers, shrink_state, stages_table

from ..errors import in_app_words
from ..widgets import KeyFooter, Plain, WrappedLog
from .run import POLL_SECONDS, progress_summary


@dataclass
class ShrinkStarted(Message):
    """The worker planned and started a shrink, or failed with `error`."""

    shrink: ShrinkDir | None
    child: subprocess.Popen | None
    error: BaseException | None = None


class ShrinkForm(ModalScreen[tuple[int, str] | None]):
    """How small: the layers to keep and, optionally, the stages; returns (layers, stages text) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run
        self.total_layers = model_layers(run.merged)

    def compose(self) -> ComposeResult:
        with Vertical(id="shrink-form"):
            yield Plain(f"Shrink {self.run.name} ({self.total_layers} layers)", classes="title")
            yield Label("layers to keep (the first and last always stay)")
            yield Input(str(max(2, self.total_layers * 2 // 3)), id="shrink-layers", type="integer")
            yield Label("stages: how many, or each one's layer count (24,20,16); empty: an eighth of the layers each")
            yield Input("", id="shrink-stages")
            yield Plain("", id="shrink-form-error")
            with Horizontal(classes="buttons"):
                yield Button("Shrink", id="shrink-start", variant="primary", compact=True)
                yield Button("Cancel", id="shrink-cancel", compact=True)

    @on(Button.Pressed, "#shrink-start")
    @on(Input.Submitted)
    def start(self) -> None:
        text = self.query_one("#shrink-layers", Input).value.strip()
        if not text.isdigit():
            self.query_one("#shrink-form-error", Static).update("layers to keep: a whole number")
            return
        self.dismiss((int(text), self.query_one("#shrink-stages", Input).value.strip()))

    @on(Button.Pressed, "#shrink-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ShrinkScreen(Screen):
    """The live view of a shrink: every finished stage's figures, the current stage's healing, Stop and Resume."""

    BINDINGS = [
        Binding("escape", "app.home", "Home"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("o", "open_stage", "Open smallest"),
    ]

    def __init__(self, shrink: ShrinkDir) -> None:
        super().__init__()
        self.shrink = shrink
        self.plan = shrink.plan()
        self.history = RunHistory(shrink.events_file)
        self.log_lines = LineTail(shrink.log_file)
        self.stage_history: tuple[int, RunHistory] | None = None
        self.state = ""

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

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(POLL_SECONDS, self.poll)

    def poll(self) -> None:
        """Fold in new events and log lines; redraw."""
        self.app.session.reap_children()
        self.history.refresh()
        lines = [line for line in self.log_lines.read() if line.strip()]
        if lines:
            self.query_one("#train-log", WrappedLog).write_lines(lines)
        state = shrink_state(self.shrink)
        self._redraw(state)
        self.state = state

    def _current_stage(self, finished: int) -> tuple[int, RunHistory] | None:
        """The stage being healed (the first unfinished one whose run exists), with its events folded."""
        number = finished + 1
        if number > self.plan.stages or not self.shrink.stage(number).events_file.is_file():
            return None
        if self.stage_history is None or self.stage_history[0] != number:
            self.stage_history = (number, RunHistory(self.shrink.stage(number).events_file))
        self.stage_history[1].refresh()
        return self.stage_history

    def _redraw(self, state: str) -> None:
        from tuneforge.core.shrink.process import why_it_ended

        finished = self.shrink.finished_stages()
        title = Text(f"{self.shrink.path.name} · {self.plan.source} · {' → '.join(map(str, self.plan.layers))} layers · ")
        title.append(state, style={"running": "bold yellow", "failed": "bold red", "stopped": "yellow"}.get(state, "bold green"))
        self.query_one("#shrink-title", Static).update(title)
        figures = Text(f"{len(finished)} of {self.plan.stages} stages finished")
        current = self._current_stage(len(finished))
        if current is not None and state != "finished":
            number, history = current
            figures.append(f"\nstage {number} ({self.plan.layers[number]} layers): "
                           f"{progress_summary(history, time.time(), state == 'running')}")
            if history.last_step:
                self.query_one("#progress", ProgressBar).update(total=history.last_step.max_steps, progress=history.last_step.step)
        if state in ("stopped", "failed"):
            message, hint = why_it_ended(self.shrink)
            figures.append(f"\n{message}", style="red" if state == "failed" else "yellow")
            figures.append(f"\nhint: {in_app_words(hint)}", style="dim")
            if self.state == "running":
                self.notify(message, title=f"shrink {state}", severity="error" if state == "failed" else "warning", markup=False)
        if state == "finished" and self.state == "running":
            self.notify("Shrink finished. Press o to open the smallest model (export, evaluate, chat).", title="done")
        self.query_one("#figures", Static).update(figures)
        self.query_one("#stages", Static).update(stages_table(self.plan, finished) if finished else "")
        self.query_one("#stop", Button).disabled = state != "running"
        self.query_one("#resume", Button).disabled = state not in ("stopped", "failed")
        self.query_one("#open-stage", Button).disabled = not finished

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        """Ask the shrink to stop: its healing run checkpoints at the end of the current step."""
        from tuneforge.core.shrink.process import stop_shrink

        if stop_shrink(self.shrink):
            self.notify("Stopping: the healing run saves a checkpoint at the end of this step.")
        else:
            self.notify("This shrink is not running.", severity="warning")

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        """Continue where it stopped (the stage from its last checkpoint), in a new child."""
        if self.state not in ("stopped", "failed"):
            return
        self.query_one("#resume", Button).disabled = True
        self.resume()

    @work(thread=True, exclusive=True, exit_on_error=False, group="shrink")
    def resume(self) -> None:
        from tuneforge.core.shrink.process import start_shrink

        try:
            self.post_message(ShrinkStarted(self.shrink, start_shrink(self.shrink)))
        except Exception as exc:  # noqa: BLE001 - shown with its hint
            self.post_message(ShrinkStarted(None, None, exc))

    def on_shrink_started(self, message: ShrinkStarted) -> None:
        if message.child is None:
            from ..errors import show_error

            show_error(self.app, message.error or RuntimeError("the shrink did not start"))
        else:
            self.app.session.children[self.shrink.path] = message.child
            self.notify("Resuming the shrink …")
        self.poll()

    @on(Button.Pressed, "#open-stage")
    def action_open_stage(self) -> None:
        """The smallest finished stage's run view: export, evaluate and chat from there."""
        finished = self.shrink.finished_stages()
        if finished:
            self.app.open_run(self.shrink.stage(finished[-1].stage))
