"""Evaluate: the run's eval questions asked of the base model, the tuned model and each verified GGUF
(one core call, evaluation.evaluate_run, in a worker), the scores per model, then every question
with the answers side by side: unnamed and shuffled until the person marks the best one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, DataTable, Header, Input, ProgressBar, Static
from textual.worker import Worker

from tuneforge.core.api import evaluation
from tuneforge.core.runs import RunDir

from ..base import TuneforgeScreen
from ..widgets import KeyFooter, Plain, plain_cells

JUDGE_PLACEHOLDER = "judge (optional): a .gguf file, ollama:NAME or http://HOST:PORT/v1, to grade each answer"
MEASURES = (("exact", "exact"), ("contains", "contains"), ("f1", "F1"), ("correct", "judge"), ("stop_rate", "stopped"))


@dataclass
class EvalProgress(Message):
    """An answer (or a verdict) done, from the worker."""

    done: int
    total: int
    line: str


@dataclass
class EvalDone(Message):
    """The evaluation finished: its report, as report.json holds it."""

    report: dict[str, Any] | None


class EvalScreen(TuneforgeScreen):
    """Did it learn? Scores per model, and the answers question by question, compared blind."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+r", "evaluate", "Evaluate"),
        Binding("left,p", "previous", "Previous"),
        Binding("right,n", "next", "Next"),
        *(Binding(str(number), f"mark({number})", f"Best: {number}", show=number == 1) for number in range(1, 10)),
    ]

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run
        self.report: dict[str, Any] | None = evaluation.read_eval_report(run.path)
        self.index = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Plain(f"Evaluate · {self.run.name}: base, tuned and each verified GGUF on the eval questions", classes="step")
        with Horizontal(classes="prepare-row"):
            yield Input(compact=True, placeholder=JUDGE_PLACEHOLDER, id="judge")
            yield Button("Evaluate", id="evaluate", variant="primary", compact=True)
        yield Plain("", id="eval-status")
        yield ProgressBar(id="eval-progress", show_eta=False)
        yield DataTable(id="eval-summary", cursor_type="none", zebra_stripes=True)
        with VerticalScroll(id="eval-answers"):
            yield Plain("", id="eval-question")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#eval-progress").display = False
        if self.report is None:
            self.say("Not evaluated yet: press Evaluate (greedy answers from every model; a minute or more).")
        else:
            self.query_one("#eval-answers").focus()
        self.show_report()

    def say(self, text: str, style: str = "") -> None:
        self.query_one("#eval-status", Static).update(Text(text, style=style))

    # The report.

    def show_report(self) -> None:
        """The summary table and the current question."""
        table = self.query_one("#eval-summary", DataTable)
        table.clear(columns=True)
        if self.report is None:
            return
        judged = self.report.get("judge") is not None
        measures = [(key, name) for key, name in MEASURES if judged or key != "correct"]
        table.add_columns("model", *(name for _, name in measures), "words", "everyday kept", "general ppl", "best")
        preferred = self.report.get("preferred", {})
        for model in self.report["models"]:
            ppl, known = model.get("perplexity"), model.get("everyday_known")
            table.add_row(*plain_cells(model["label"], *(evaluation.shown(key, model.get(key)) for key, _ in measures),
                                       f"{model['mean_words']:.1f}", "–" if known is None else f"{model['everyday_kept']}/{known}",
                                       "–" if ppl is None else f"{ppl:.2f}", str(preferred.get(model["label"], 0))))
        self.say(f"{len(self.report['questions'])} questions from {self.report['data']}. "
                 f"{evaluation.what_the_scores_measure(self.report['data'], how_else=False)} "
                 "← → pages through them; press the number of the best answer (the models are named once you mark).")
        self.show_question()

    def show_question(self) -> None:
        """Question `index`: its reference, then each answer as a number, the models named once marked."""
        if not self.report or not self.report["questions"]:
            return
        question = self.report["questions"][self.index]
        mark = self.report.get("marks", {}).get(str(self.index))
        text = Text()
        text.append(f"Question {self.index + 1} of {len(self.report['questions'])}: ", style="bold")
        text.append(f"{question['question']}\n")
        text.append("Reference: ", style="bold")
        text.append(f"{question['reference']}\n")
        for number, label in enumerate(evaluation.blind_order(self.report, self.index), start=1):
            answer = question["answers"][label]
            named = f" {label}" if mark else ""
            best = "  ← best" if mark == label else ""
            text.append(f"\n{number}{named}{best}: ", style="bold green" if mark == label else "bold")
            text.append(answer["text"] or "(no answer)")
            if not answer["stopped"]:
                text.append("  [cut at the token limit]", style="dim")
        self.query_one("#eval-question", Static).update(text)

    def action_previous(self) -> None:
        if self.report and self.index > 0:
            self.index -= 1
            self.show_question()

    def action_next(self) -> None:
        if self.report and self.index < len(self.report["questions"]) - 1:
            self.index += 1
            self.show_question()

    def action_mark(self, number: int) -> None:
        """Mark answer `number` of this question the best; saved in report.json at once."""
        if not self.report:
            return
        order = evaluation.blind_order(self.report, self.index)
        if not 1 <= number <= len(order):
            return
        try:
            self.report = evaluation.save_mark(self.run.path, self.index, order[number - 1])
        except Exception as exc:  # noqa: BLE001 - a report removed meanwhile: say so, keep the app
            self.show_error(exc)
            return
        self.show_report()

    # Running the evaluation.

    @on(Button.Pressed, "#evaluate")
    def action_evaluate(self) -> None:
        self.query_one("#evaluate", Button).disabled = True
        self.query_one("#eval-progress").display = True
        self.say("Evaluating … (each model is loaded in turn)")
        self.evaluate(self.query_one("#judge", Input).value.strip() or None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="evaluate")
    def evaluate(self, judge: str | None) -> None:
        """The core call, in this worker; its report comes back as an EvalDone message (a failure is shown with its hint)."""
        def progress(state) -> None:
            self.post_message(EvalProgress(state.done, state.total, state.line()))

        evaluation.evaluate_run(self.run.path, judge=judge, on_progress=progress)
        self.post_message(EvalDone(evaluation.read_eval_report(self.run.path)))

    def worker_failed(self, worker: Worker) -> None:
        self.query_one("#evaluate", Button).disabled = False
        self.query_one("#eval-progress").display = False
        self.say("The evaluation stopped.", "red")

    def on_eval_progress(self, message: EvalProgress) -> None:
        self.query_one("#eval-progress", ProgressBar).update(total=message.total, progress=message.done)
        self.say(message.line)

    def on_eval_done(self, message: EvalDone) -> None:
        self.query_one("#evaluate", Button).disabled = False
        self.query_one("#eval-progress").display = False
        self.report, self.index = message.report, 0
        self.show_report()
        self.query_one("#eval-answers").focus()  # digits mark answers, not type into the judge field

