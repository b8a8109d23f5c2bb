"""A run's live view: progress, ETA, tokens/s, memory, the loss and eval-loss chart, Stop and Resume.

It tails the run's events.jsonl and train.log, so it works the same for a run this app
launched and for one it re-attaches to after being closed and opened again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Header, ProgressBar, Static
from textual_plotext import PlotextPlot

from tuneforge.core.api import runs as runs_api
from tuneforge.core.api import shrink as shrink_api
from tuneforge.core.api.evaluation import GENERAL_ANSWERS_FILE, forgetting_line, read_answers
from tuneforge.core.diagnosis import record_death
from tuneforge.core.events import RunHistory, Step
from tuneforge.core.runs import RunDir

from ..session import model_label
from ..widgets import KeyFooter, Plain, WrappedLog
from .job_view import JobScreen, progress_summary, state_title

SHOWN_LOST = 5
"""Everyday answers lost in training listed in the view; the rest are in the run's general-answers.json."""
DONE_STATES = ("trained", "merged", "exported", "export failed")
"""The run trained: it can be exported (again) and chatted with."""


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


CHARTS: tuple[tuple[str, Callable[[Step], float | None]], ...] = (
    ("loss", lambda step: step.loss),
    ("reward", lambda step: step.reward),
    ("KL to the base", lambda step: step.kl),
    ("learning rate", lambda step: step.lr),
    ("gradient norm", lambda step: step.grad_norm),
)
"""The curves the run view draws, one at a time (an 80-column terminal has room for one), `g` going to the next;
a curve no step has (reward and KL outside GRPO) is skipped. The reward chart draws each reward's mean beside it."""
SHOWN_SAMPLES = 2
"""Sampled answers shown under a GRPO run's chart (the newest recorded), each with its rewards."""


def samples_text(history: RunHistory) -> Text:
    """The newest answers a GRPO run sampled, each with what every reward gave it: what is being rewarded, as a
    person watching a notebook reads it."""
    text = Text()
    if not history.samples:
        return text
    sampled = history.samples[-1]
    text.append(f"sampled at step {sampled.step}:", style="bold")
    for index in range(max(0, len(sampled.answers) - SHOWN_SAMPLES), len(sampled.answers)):
        answer = sampled.answers[index]
        scores = ", ".join(f"{name} {values[index]:g}" for name, values in sampled.rewards.items()
                           if index < len(values) and values[index] is not None)
        text.append(f"\n  {' '.join(answer.split())[:100]!r}", style="dim")
        text.append(f"  → {scores or 'no score'}")
    return text


class RunScreen(JobScreen):
    """The live view of one run, and its hub: Stop, Resume, Export, Evaluate, Chat, Shrink, Push."""

    KIND = "training"
    NOT_RUNNING = "This run is not training."

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
        super().__init__(run)
        self.run = run
        self.chart = 0
        """Which of CHARTS is shown."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Plain(self.run.name, id="run-title", classes="step")
        yield ProgressBar(id="progress", show_eta=False)
        yield Plain("", id="figures")
        yield PlotextPlot(id="loss-chart")
        yield Plain("", id="samples")
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
        super().on_mount()

    def read_state(self) -> str:
        state = self.run.state(self.history)
        # A child that died unheard (in an earlier session of the app, too) gets its cause recorded.
        if state == "failed" and record_death(self.run, history=self.history):
            self.history.refresh()
        return state

    def redraw(self, state: str, changed: bool) -> None:
        running = state == "running"
        self.query_one("#run-title", Static).update(state_title(self.title_line, state))
        last, download = self.history.last_step, self.history.download
        if last:
            self.query_one("#progress", ProgressBar).update(total=last.max_steps, progress=last.step)
        elif download and download.total_bytes:  # the base model's download, before training starts
            self.query_one("#progress", ProgressBar).update(total=download.total_bytes, progress=download.done_bytes)
        figures = Text(progress_summary(self.history, time.time(), running))
        self.ended(figures, state, changed)
        if state == "export failed":
            figures.append(f"\nexport failed: {self.run.last_export_failure(self.history)}", style="red")
        if state in DONE_STATES:
            figures.append(forgetting_text(self.run, self.history))
        if state in DONE_STATES and changed and self.state == "running":
            self.notify("Training finished. Press e to export to GGUF.", title="done")
        self.query_one("#figures", Static).update(figures)
        samples = samples_text(self.history)
        self.query_one("#samples", Static).update(samples)
        self.query_one("#samples", Static).display = bool(samples)
        self._plot()
        self.show_buttons(running, can_resume=state in ("stopped", "failed") and self.run.last_checkpoint() is not None)
        self.query_one("#export", Button).disabled = state not in DONE_STATES
        self.query_one("#evaluate", Button).disabled = state not in DONE_STATES
        self.query_one("#chat", Button).disabled = state not in DONE_STATES
        self.query_one("#shrink", Button).disabled = not self._can_shrink(state)

    def _charts(self) -> list[int]:
        """The CHARTS this run has a curve for."""
        return [index for index, (_, measure) in enumerate(CHARTS)
                if index == 0 or any(measure(step) is not None for step in self.history.steps)]

    def _plot(self) -> None:
        plot = self.query_one("#loss-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        charts = self._charts()
        shown = self.chart if self.chart in charts else 0
        title, measure = CHARTS[shown]
        plt.title(f"{title}  (g: {CHARTS[charts[(charts.index(shown) + 1) % len(charts)]][0]})")
        steps = [e for e in self.history.steps if measure(e) is not None]
        if steps:
            plt.plot([e.step for e in steps], [measure(e) for e in steps], label="train" if shown == 0 else "mean" if title == "reward" else "")
        if title == "reward":  # each reward's own mean beside the weighted one
            names = sorted({name for step in steps for name in (step.rewards or {})})
            for name in names:
                scored = [e for e in steps if (e.rewards or {}).get(name) is not None]
                plt.plot([e.step for e in scored], [e.rewards[name] for e in scored], label=name)  # type: ignore[index]
        if shown == 0 and self.history.evals:
            evals = self.history.evals
            plt.plot([e.step for e in evals], [e.eval_loss for e in evals], label="eval", marker="dot")
        plot.refresh()

    def action_chart(self) -> None:
        """Show the next curve: loss, reward and KL (GRPO), learning rate, gradient norm."""
        charts = self._charts()
        self.chart = charts[(charts.index(self.chart) + 1) % len(charts)] if self.chart in charts else 0
        self._plot()

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        """Continue from the last complete checkpoint in a new child (started off the UI thread)."""
        if self.run.state() == "running":
            self.notify("This run is training: it goes on by itself (stop it first to resume it later).", severity="warning")
            return
        self.query_one("#resume", Button).disabled = True
        self.notify("Resuming from the last checkpoint …")
        self.start_job(lambda: (self.run, runs_api.resume(self.run)))

    @on(Button.Pressed, "#export")
    def action_export(self) -> None:
        if self._trained("Export"):
            self.tuneforge.open_export(self.run)

    @on(Button.Pressed, "#evaluate")
    def action_evaluate(self) -> None:
        if self._trained("Evaluate"):
            self.tuneforge.open_eval(self.run)

    @on(Button.Pressed, "#chat")
    def action_chat(self) -> None:
        if self._trained("Chat"):
            self.tuneforge.open_chat(self.run)

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
        from .shrink_form import ShrinkForm

        self.tuneforge.push_screen(ShrinkForm(self.run), self._shrink_chosen)

    def action_publish(self) -> None:
        """Publish the trained run to the Hugging Face Hub (or into a folder first, to look at)."""
        if self.run.state() not in DONE_STATES:
            self.notify("Publish needs a trained run.", severity="warning")
            return
        from .publish import PublishForm

        self.tuneforge.push_screen(PublishForm(self.run))

    def _can_shrink(self, state: str) -> bool:
        """A shrink starts from a finished run's merged model."""
        return state in DONE_STATES and (self.run.merged / "config.json").is_file()

    def _shrink_chosen(self, choice: tuple[int, str] | None) -> None:
        """Plan the shrink (a refusal comes back with its hint) and start its child; its view opens."""
        if choice is not None:
            layers, stages = choice
            self.start_job(lambda: shrink_api.start(shrink_api.plan_shrink(str(self.run.path), layers=layers,
                                                                           stages=shrink_api.parse_stages(stages or None))))
