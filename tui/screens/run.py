"""A run's live view: progress, ETA, tokens/s, memory, the loss and eval-loss chart, Stop and Resume.

It tails the run's events.jsonl and train.log, so it works the same for a run this app
launched and for one it re-attaches to after being closed and opened again.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Header, ProgressBar, Static
from textual_plotext import PlotextPlot

from tuneforge.core.diagnosis import failure_cause, record_death
from tuneforge.core.events import LineTail, RunHistory, Step
from tuneforge.core.general_answers import RESULT_FILE as GENERAL_ANSWERS_FILE
from tuneforge.core.general_answers import forgetting_line, read_answers
from tuneforge.core.progress import duration
from tuneforge.core.runs import RunDir

from ..errors import in_app_words
from ..session import model_label
from ..widgets import KeyFooter, Plain, WrappedLog

POLL_SECONDS = 0.5
SHOWN_LOST = 5
"""Everyday answers lost in training listed in the view; the rest are in the run's general-answers.json."""
DONE_STATES = ("trained", "merged", "exported", "export failed")
"""The run trained: it can be exported (again) and chatted with."""


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


def forgetting_text(run: RunDir, history: RunHistory) -> Text:
    """What training did to what the model knew: the everyday answers kept (the lost ones with what the model
    says now, the first few) and the general-text perplexity, from the finished run's figures."""
    result = history.finished.result if history.finished else None
    line = forgetting_line(result) if result else None
    text = Text()
    if line is None:
        return text
    kept = read_answers(run.path / GENERAL_ANSWERS_FILE)
    text.append(f"\n{line}", style="yellow" if kept and kept.lost else "green")
    for item in (kept.lost if kept else [])[:SHOWN_LOST]:
        text.append(f"\n  lost: {item.question} → {item.after[:80]}", style="dim")
    if kept and len(kept.lost) > SHOWN_LOST:
        text.append(f"\n  … and {len(kept.lost) - SHOWN_LOST} more in {GENERAL_ANSWERS_FILE}", style="dim")
    return text


@dataclass
class Resumed(Message):
    """The Resume worker started the training child, or failed with `error`."""

    child: subprocess.Popen | None
    error: BaseException | None = None


CHARTS: tuple[tuple[str, Callable[[Step], float | None]], ...] = (
    ("loss", lambda step: step.loss),
    ("learning rate", lambda step: step.lr),
    ("gradient norm", lambda step: step.grad_norm),
)
"""The curves the run view draws, one at a time (an 80-column terminal has room for one), `g` going to the next."""


class RunScreen(Screen):
    """The live view of one run, and its hub: Stop, Resume, Export, Evaluate, Chat."""

    BINDINGS = [
        Binding("escape", "app.home", "Home"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("e", "export", "Export"),
        Binding("v", "evaluate", "Eval"),
        Binding("c", "chat", "Chat"),
        Binding("k", "shrink", "Shrink"),
        Binding("p", "publish", "Push"),  # tuneforge push; "Publish" would not fit 80 columns
        Binding("g", "chart", "Chart", show=False),  # the chart's title says so: "(g: learning rate)"
    ]

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run
        self.history = RunHistory(run.events_file)
        """The run's events folded; each poll reads only the lines appended since the last."""
        self.log_lines = LineTail(run.log_file)
        self.state = ""
        self.chart = 0
        """Which of CHARTS is shown."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Plain(self.run.name, id="run-title", classes="step")
        yield ProgressBar(id="progress", show_eta=False)
        yield Plain("", id="figures")
        yield PlotextPlot(id="loss-chart")
        yield WrappedLog(id="train-log")
        with Horizontal(classes="buttons"):
            yield Button("Stop", id="stop", variant="error", compact=True)
            yield Button("Resume", id="resume", variant="warning", compact=True)
            yield Button("Export", id="export", variant="primary", compact=True)
            yield Button("Evaluate", id="evaluate", compact=True)
            yield Button("Chat", id="chat", variant="success", compact=True)
            yield Button("Shrink", id="shrink", compact=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        try:
            config = self.run.load_config()
            processes = config.processes * config.nodes
            method = config.method + (f" × {processes} processes" if processes > 1 else "")
            self.title_line = f"{self.run.name} · {model_label(config.model)} · {method} · {Path(config.data).name}"
        except Exception as exc:  # noqa: BLE001 - a damaged config.yaml still lets the person see the run
            self.title_line = f"{self.run.name} · config.yaml unreadable: {exc}"
        self.poll()
        self.set_interval(POLL_SECONDS, self.poll)

    def poll(self) -> None:
        """Fold in new events and log lines; redraw what changed."""
        self.app.session.reap_children()
        events = self.history.refresh()
        lines = [line for line in self.log_lines.read() if line.strip()]
        if lines:
            self.query_one("#train-log", WrappedLog).write_lines(lines)
        state = self.run.state(self.history)
        # A child that died unheard (in an earlier session of the app, too) gets its cause recorded.
        if state == "failed" and record_death(self.run, history=self.history):
            events += self.history.refresh()
        if events or state != self.state:
            self._redraw(state, changed=state != self.state)
        self.state = state

    def _redraw(self, state: str, changed: bool) -> None:
        running = state == "running"
        title = Text(self.title_line + " · ")
        title.append(state, style={"running": "bold yellow", "failed": "bold red", "stopped": "yellow",
                                   "export failed": "bold red"}.get(state, "bold green"))
        self.query_one("#run-title", Static).update(title)
        last, download = self.history.last_step, self.history.download
        if last:
            self.query_one("#progress", ProgressBar).update(total=last.max_steps, progress=last.step)
        elif download and download.total_bytes:  # the base model's download, before training starts
            self.query_one("#progress", ProgressBar).update(total=download.total_bytes, progress=download.done_bytes)
        figures = Text(progress_summary(self.history, time.time(), running))
        if state in ("failed", "stopped"):
            message, hint = failure_cause(self.run, history=self.history)
            figures.append(f"\n{message}", style="red" if state == "failed" else "yellow")
            if hint:
                figures.append(f"\nhint: {in_app_words(hint)}", style="dim")
            if changed and self.state == "running":
                self.notify(message, title=f"training {state}", severity="error" if state == "failed" else "warning", markup=False)
        elif state == "export failed":
            figures.append(f"\nexport failed: {self.run.last_export_failure(self.history)}", style="red")
        if state in DONE_STATES:
            figures.append(forgetting_text(self.run, self.history))
        if state in DONE_STATES and changed and self.state == "running":
            self.notify("Training finished. Press e to export to GGUF.", title="done")
        self.query_one("#figures", Static).update(figures)
        self._plot()
        can_resume = state in ("stopped", "failed") and self.run.last_checkpoint() is not None
        self.query_one("#stop", Button).disabled = not running
        self.query_one("#resume", Button).disabled = not can_resume
        self.query_one("#export", Button).disabled = state not in DONE_STATES
        self.query_one("#evaluate", Button).disabled = state not in DONE_STATES
        self.query_one("#chat", Button).disabled = state not in DONE_STATES
        self.query_one("#shrink", Button).disabled = not self._can_shrink(state)

    def _plot(self) -> None:
        plot = self.query_one("#loss-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        title, measure = CHARTS[self.chart]
        plt.title(f"{title}  (g: {CHARTS[(self.chart + 1) % len(CHARTS)][0]})")
        steps = [e for e in self.history.steps if measure(e) is not None]
        if steps:
            plt.plot([e.step for e in steps], [measure(e) for e in steps], label="train" if self.chart == 0 else "")
        if self.chart == 0 and self.history.evals:
            evals = self.history.evals
            plt.plot([e.step for e in evals], [e.eval_loss for e in evals], label="eval", marker="dot")
        plot.refresh()

    def action_chart(self) -> None:
        """Show the next curve: loss, learning rate, gradient norm."""
        self.chart = (self.chart + 1) % len(CHARTS)
        self._plot()

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        """Ask the child to checkpoint and exit (it finishes the current step first)."""
        from tuneforge.core.training_process import stop_training

        if stop_training(self.run):
            self.notify("Stopping: a checkpoint is saved at the end of this step.")
        else:
            self.notify("This run is not training.", severity="warning")

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        """Continue from the last complete checkpoint in a new child (started off the UI thread)."""
        if self.run.state() == "running":
            self.notify("This run is training: it goes on by itself (stop it first to resume it later).", severity="warning")
            return
        self.query_one("#resume", Button).disabled = True
        self.notify("Resuming from the last checkpoint …")
        self.resume()

    @work(thread=True, exclusive=True, exit_on_error=False, group="resume")
    def resume(self) -> None:
        """Check the run can resume and start its child; the outcome comes back as a Resumed message."""
        from tuneforge.core.training_process import start_training

        try:
            self.post_message(Resumed(start_training(self.run, resume=True)))
        except Exception as exc:  # noqa: BLE001 - shown with its hint
            self.post_message(Resumed(None, exc))

    def on_resumed(self, message: Resumed) -> None:
        if message.child is None:
            from ..errors import show_error

            show_error(self.app, message.error or RuntimeError("the run did not resume"))
            self.query_one("#resume", Button).disabled = False
        else:
            self.app.session.children[self.run.path] = message.child
        self.poll()

    @on(Button.Pressed, "#export")
    def action_export(self) -> None:
        if self._trained("Export"):
            self.app.open_export(self.run)

    @on(Button.Pressed, "#evaluate")
    def action_evaluate(self) -> None:
        if self._trained("Evaluate"):
            self.app.open_eval(self.run)

    @on(Button.Pressed, "#chat")
    def action_chat(self) -> None:
        if self._trained("Chat"):
            self.app.open_chat(self.run)

    def _trained(self, action: str) -> bool:
        """Whether the run finished training; if not, say so rather than let `action` do nothing."""
        state = self.run.state()
        if state not in DONE_STATES:
            self.notify(f"{action} needs a trained run: this one is {state}.", severity="warning")
        return state in DONE_STATES

    @on(Button.Pressed, "#shrink")
    def action_shrink(self) -> None:
        """Plan a smaller model from this run's merged one (fewer layers, healed by distillation)."""
        if not self._can_shrink(self.run.state()):
            self.notify("Shrinking starts from the merged model: export (or merge) the run first.", severity="warning")
            return
        from .shrink import ShrinkForm

        self.app.push_screen(ShrinkForm(self.run), self._shrink_chosen)

    def action_publish(self) -> None:
        """Publish the trained run to the Hugging Face Hub (or into a folder first, to look at)."""
        if self.run.state() not in DONE_STATES:
            self.notify("Publish needs a trained run.", severity="warning")
            return
        from .publish import PublishForm

        self.app.push_screen(PublishForm(self.run))

    def _can_shrink(self, state: str) -> bool:
        """A shrink starts from a finished run's merged model."""
        return state in DONE_STATES and (self.run.merged / "config.json").is_file()

    def _shrink_chosen(self, choice: tuple[int, str] | None) -> None:
        if choice is not None:
            self.start_shrink(*choice)

    @work(thread=True, exclusive=True, exit_on_error=False, group="shrink")
    def start_shrink(self, layers: int, stages: str) -> None:
        """Plan the shrink (a refusal comes back with its hint) and start its child."""
        from tuneforge.core.shrink.job import create_shrink, plan_shrink
        from tuneforge.core.shrink.plan import parse_stages
        from tuneforge.core.shrink.process import start_shrink

        from .shrink import ShrinkStarted

        try:
            shrink = create_shrink(plan_shrink(str(self.run.path), layers=layers, stages=parse_stages(stages or None)))
            self.post_message(ShrinkStarted(shrink, start_shrink(shrink)))
        except Exception as exc:  # noqa: BLE001 - shown with its hint
            self.post_message(ShrinkStarted(None, None, exc))

    def on_shrink_started(self, message: Any) -> None:
        if message.child is None:
            from ..errors import show_error

            show_error(self.app, message.error or RuntimeError("the shrink did not start"))
            return
        self.app.session.children[message.shrink.path] = message.child
        self.app.open_shrink(message.shrink)
