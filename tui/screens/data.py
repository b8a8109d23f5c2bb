"""Data: pick a file or folder, check it with the model's tokenizer, see problems, stats and a rendered example."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.validation import Integer, Number
from textual.widgets import Button, Header, Input, Label, Static
from textual.worker import Worker

from tuneforge.core.api.data import DEMO_DATA, demo_file

from ..base import TuneforgeScreen
from ..widgets import KeyFooter, Plain

if TYPE_CHECKING:
    from tuneforge.core.api.data import DataReport

PREVIEW_CHARS = 1200
"""The rendered example is cut here: enough to see the template and the trained answer."""


def stats_text(report: DataReport) -> str:
    """The dataset's figures: counts, lengths, truncation, the trained share."""
    stats = report.stats
    assert stats is not None
    lengths = stats.length_summary()
    total = len(stats.token_lengths) or 1
    lines = [
        f"format      {report.shape}",
        f"examples    {stats.records} → {stats.train_examples} train, {stats.eval_examples} eval",
        f"tokens      {lengths['min']}–{lengths['max']}, median {lengths['median']}, p95 {lengths['p95']}",
        f"truncated   {stats.truncated} ({100 * stats.truncated / total:.0f}%) at {stats.max_length}",
        f"trained     {stats.answer_share:.0%} of {stats.total_tokens} tokens",
        f"end of turn {'trained (learns to stop)' if stats.end_of_turn_trained else 'NOT trained'}",
    ]
    if stats.dropped:
        lines.append(f"dropped     {stats.dropped} with no answer left inside max length")
    if stats.reasoning_dropped:
        lines.append(f"reasoning   dropped by the chat template in {stats.reasoning_dropped} record(s): not learned")
    return "\n".join(lines)


def histogram_text(report: DataReport, bins: int = 6, width: int = 16) -> Text:
    """Token lengths as a horizontal bar chart, one row per length bucket."""
    assert report.stats is not None
    buckets = report.stats.histogram(bins)
    most = max((count for _, _, count in buckets), default=0) or 1
    text = Text("examples by token length\n", style="bold")
    for low, high, count in buckets:
        bar = "█" * round(width * count / most) or ("▏" if count else "")
        text.append(f"{low:>5}–{high:<5} ")
        text.append(bar, style="cyan")
        text.append(f" {count}\n")
    return text


def preview_text(segments: list[tuple[str, bool]]) -> Text:
    """The first example as the model sees it: trained tokens highlighted, masked ones dimmed."""
    text = Text()
    used = 0
    for piece, trained in segments:
        piece = piece[: max(0, PREVIEW_CHARS - used)]
        used += len(piece)
        text.append(piece, style="bold black on green" if trained else "dim")
    if used >= PREVIEW_CHARS:
        text.append(" …", style="dim")
    return text


@dataclass
class DataChecked(Message):
    """A data check finished: its report with the settings it used."""

    source: str
    """What the person typed: a file or folder, or a hub dataset id."""
    report: DataReport
    max_length: int
    eval_split: float | None


class DataScreen(TuneforgeScreen):
    """Step 2: the training data."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+o", "browse", "Browse…"),
        Binding("ctrl+s", "sample", "Sample data"),
        Binding("ctrl+d", "documents", "From documents…"),
        Binding("ctrl+n", "next", "Next"),
    ]

    def compose(self) -> ComposeResult:
        session = self.tuneforge.session
        yield Header()
        yield Plain(f"Step 2 of 4 · Training data for {session.model_label}", classes="step")
        with Horizontal(id="data-source"):
            yield Input(session.data or "", compact=True, placeholder="a dataset file or folder, or a hub dataset id (owner/name)", id="data-path")
            yield Button("Browse…", id="browse", compact=True)
            yield Button("Sample", id="sample", compact=True)
            yield Button("From documents…", id="documents", compact=True)
        with Horizontal(id="data-options"):
            yield Label("max length")
            yield Input(str(session.max_length), compact=True, id="max-length", validators=[Integer(minimum=16)], type="integer")
            yield Label("eval split")
            yield Input("" if session.eval_split is None else str(session.eval_split), placeholder="auto", compact=True,
                        id="eval-split", validators=[Number(minimum=0, maximum=0.9)], valid_empty=True, type="number",
                        tooltip="Share of the data held out for eval loss. Empty: none of a set of answers under 1,000 "
                                "examples (every fact should be learned), else 0.1.")
            yield Button("Check", id="check", variant="primary", compact=True)
        yield Plain("Pick a dataset, or press Sample for the shipped one (facts about a made-up town).", id="data-status")
        with VerticalScroll(id="data-results"):
            yield Plain("", id="problems", classes="error")
            with Horizontal(id="data-figures"):
                yield Plain("", id="stats")
                yield Plain("", id="histogram")
            yield Plain("", id="preview")
        with Horizontal(classes="buttons"):
            yield Button("Next: training settings", id="next", variant="success", disabled=True, compact=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#data-figures").display = False
        session = self.tuneforge.session
        if session.report is not None and session.report.stats is not None:
            self.show_report(session.report)
        self.query_one("#data-path", Input).focus()

    @on(Button.Pressed, "#browse")
    def action_browse(self) -> None:
        from ..widgets.pickers import browse_into

        browse_into(self.query_one("#data-path", Input), "A dataset file, or a folder of .txt/.md", self.action_check)

    @on(Button.Pressed, "#documents")
    def action_documents(self) -> None:
        """The Prepare step: documents in, a training folder out, handed back here."""
        from .prepare import PrepareScreen

        self.app.push_screen(PrepareScreen())

    def check_prepared(self) -> None:
        """Check the prepared train.jsonl the app just handed over (session.data)."""
        self.query_one("#data-path", Input).value = self.tuneforge.session.data or ""
        self.action_check()

    @on(Button.Pressed, "#sample")
    def action_sample(self) -> None:
        self.query_one("#data-path", Input).value = str(demo_file(DEMO_DATA))
        self.action_check()

    @on(Button.Pressed, "#check")
    @on(Input.Submitted)
    def action_check(self) -> None:
        """Validate the fields, then check the data in a worker."""
        path = self.query_one("#data-path", Input).value.strip()
        status = self.query_one("#data-status", Static)
        fields = [self.query_one("#max-length", Input), self.query_one("#eval-split", Input)]
        invalid = [f for f in fields if not f.is_valid]
        if not path:
            status.update(Text("Pick a dataset first.", style="red"))
        elif invalid:
            status.update(Text(f"{invalid[0].id}: " + "; ".join(invalid[0].validate(invalid[0].value).failure_descriptions),
                               style="red"))
        else:
            self.query_one("#next", Button).disabled = True
            status.update("Checking … (the first use of a model loads its tokenizer; a GGUF model is imported once, up to a minute)")
            eval_split = float(fields[1].value) if fields[1].value.strip() else None
            self.check(path, self.tuneforge.session.model, int(fields[0].value), eval_split)

    @work(thread=True, exclusive=True, exit_on_error=False, group="data")
    def check(self, path: str, model: str, max_length: int, eval_split: float | None) -> None:
        """Check the data in this worker; the report comes back as a DataChecked message."""
        from tuneforge.core.api.data import check_data

        self.post_message(DataChecked(path, check_data(path, model, max_length, eval_split), max_length, eval_split))

    def worker_failed(self, worker: Worker) -> None:
        self.query_one("#data-status", Static).update(Text("The check failed; see the message.", style="red"))

    def on_data_checked(self, message: DataChecked) -> None:
        session = self.tuneforge.session
        local = Path(message.source).expanduser()
        data = str(local.resolve()) if local.exists() else message.source  # a hub id stays as typed
        if data != session.data:
            session.eval_data = None  # another dataset: the held-out file that came with the last one does not apply
        session.data = data
        session.max_length, session.eval_split, session.report = message.max_length, message.eval_split, message.report
        self.show_report(message.report)

    def show_report(self, report: DataReport) -> None:
        """Problems (each FILE:LINE) or the stats, the length histogram and the rendered example."""
        status = self.query_one("#data-status", Static)
        problems = self.query_one("#problems", Static)
        figures = self.query_one("#data-figures")
        if report.problems:
            status.update(Text(f"{report.path}: {len(report.problems)} problem(s); fix them and check again.", style="bold red"))
            problems.update("\n".join(report.problems))
            figures.display = False
            self.query_one("#preview", Static).update("")
            self.query_one("#next", Button).disabled = True
            return
        held_out = f" Held out: {self.tuneforge.session.eval_data}." if self.tuneforge.session.eval_data else ""
        status.update(Text(f"{report.path}: {report.shape} data, no problems.{held_out}", style="bold green"))
        problems.update("")
        figures.display = True
        self.query_one("#stats", Static).update(stats_text(report))
        self.query_one("#histogram", Static).update(histogram_text(report))
        legend = Text("Example as trained: ", style="bold")
        legend.append("highlighted", style="bold black on green")
        legend.append(" = learned (the answer and its end-of-turn), ")
        legend.append("dim", style="dim")
        legend.append(" = context only\n\n")
        self.query_one("#preview", Static).update(legend + preview_text(report.preview))
        self.query_one("#next", Button).disabled = False
        self.query_one("#next", Button).focus()

    @on(Button.Pressed, "#next")
    def action_next(self) -> None:
        from .train import TrainFormScreen

        if not self.query_one("#next", Button).disabled:
            self.app.push_screen(TrainFormScreen())
