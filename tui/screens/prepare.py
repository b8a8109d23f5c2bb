"""Prepare: documents in, a training folder out — pick documents and a generator (tested before use),
preview the chunks with their sources, run with progress (Stop keeps what is drafted), then review.

Each action is one core call in a worker (data_api.preview_chunks, test_generator, prepare_documents);
the review of the drafted pairs is its own screen (review.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.validation import Integer
from textual.widgets import Button, DataTable, Header, Input, Label, ProgressBar, Static
from textual.worker import Worker

from ..base import TuneforgeModal, TuneforgeScreen
from ..widgets import KeyFooter, Plain, plain_cells

if TYPE_CHECKING:
    from tuneforge.core.api.data import PrepareReport

GENERATOR_PLACEHOLDER = "generator: default, a .gguf file, ollama:NAME or http://HOST:PORT/v1 (empty: chunks train as text)"
PREVIEW_WORDS = 12


@dataclass
class PrepareProgress(Message):
    """A stage's count from the worker: `line` as the CLI prints it."""

    done: int
    total: int
    line: str


@dataclass
class PrepareDone(Message):
    """The preparation (or a preview, or a connection test) finished: its result."""

    kind: str
    result: Any = None


class ChunkView(TuneforgeModal[None]):
    """One chunk whole, with where it is from: what the generator will read."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, source: str, tokens: int, text: str) -> None:
        super().__init__()
        self.source, self.tokens, self.text = source, tokens, text

    def compose(self) -> ComposeResult:
        with Vertical(id="chunk-view"):
            yield Plain(f"{self.source} · {self.tokens} tokens", classes="title")
            with VerticalScroll():
                yield Plain(self.text)
            yield Plain("Escape closes", classes="field-help")


class PrepareScreen(TuneforgeScreen):
    """Turn documents into a training folder, beside the Data step."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+o", "preview", "Preview chunks"),
        Binding("ctrl+r", "prepare", "Prepare"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self.report: PrepareReport | None = None
        self.chunks: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Plain(f"Prepare training data from documents · chunks measured by {self.tuneforge.session.model_label}", classes="step")
        with Horizontal(classes="prepare-row"):
            yield Input(compact=True, placeholder="documents: PDF, DOCX, HTML, Markdown or TXT files, or a folder", id="sources")
            yield Button("Browse…", id="browse", compact=True)
        with Horizontal(classes="prepare-row"):
            yield Input(compact=True, placeholder="output folder (default: beside the documents, DOCUMENTS-prepared)", id="out")
        with Horizontal(classes="prepare-row"):
            yield Input(compact=True, placeholder=GENERATOR_PLACEHOLDER, id="generator")
            yield Button("Test", id="test", compact=True)
        with Horizontal(classes="prepare-row"):
            yield Label("questions/chunk")
            yield Input("3", compact=True, id="questions", type="integer", validators=[Integer(minimum=1, maximum=20)])
            yield Label("paraphrases")
            yield Input("2", compact=True, id="paraphrases", type="integer", validators=[Integer(minimum=0, maximum=10)])
            yield Label("chunk tokens")
            yield Input("512", compact=True, id="chunk-tokens", type="integer", validators=[Integer(minimum=64)])
        yield Plain("Pick documents; a generator drafts question-answer pairs (a 3-8B instruct model drafts well).", id="prepare-status")
        yield ProgressBar(id="prepare-progress", show_eta=False)
        yield DataTable(id="chunks", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="buttons"):
            yield Button("Preview chunks", id="preview", compact=True)
            yield Button("Prepare", id="prepare", variant="primary", compact=True)
            yield Button("Stop", id="stop", variant="error", compact=True, disabled=True)
            yield Button("Review pairs", id="review", variant="success", compact=True, disabled=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#prepare-progress").display = False
        self.query_one("#chunks", DataTable).add_columns("source", "tokens", "begins")
        self.query_one("#sources", Input).focus()

    # Reading the fields.

    def sources(self) -> list[str]:
        """The documents typed (several separated by commas)."""
        return [part.strip() for part in self.query_one("#sources", Input).value.split(",") if part.strip()]

    def out_dir(self) -> Path:
        """The output folder: the one typed, else DOCUMENTS-prepared beside the first source."""
        typed = self.query_one("#out", Input).value.strip()
        if typed:
            return Path(typed).expanduser()
        first = Path(self.sources()[0]).expanduser().resolve()
        return first.with_name(f"{first.stem}-prepared")

    def numbers(self) -> dict[str, int] | None:
        """The three counts, or None (with the first invalid field named in the status line)."""
        fields = {"questions": "questions per chunk", "paraphrases": "paraphrases", "chunk-tokens": "chunk tokens"}
        for name, label in fields.items():
            widget = self.query_one(f"#{name}", Input)
            if not widget.is_valid:
                self.say(f"{label}: " + "; ".join(widget.validate(widget.value).failure_descriptions), "red")
                return None
        return {name: int(self.query_one(f"#{name}", Input).value) for name in fields}

    def say(self, text: str, style: str = "") -> None:
        self.query_one("#prepare-status", Static).update(Text(text, style=style))

    # Actions.

    @on(Button.Pressed, "#browse")
    def action_browse(self) -> None:
        from ..widgets.pickers import browse_into

        browse_into(self.query_one("#sources", Input), "Documents, or a folder of them", lambda: None)

    @on(Button.Pressed, "#test")
    def action_test(self) -> None:
        spec = self.query_one("#generator", Input).value.strip()
        if not spec:
            self.say("No generator: the chunks train as text (continued pre-training).")
            return
        self.say(f"Testing {spec} … (a GGUF file loads first)" + self.note_on(spec))
        self.run_core("test", spec)

    @staticmethod
    def note_on(spec: str) -> str:
        """The warning to give about a generator, as a line to add to the status ("" for none)."""
        from tuneforge.core.api.data import generator_note

        note = generator_note(spec)
        return f"\nNote: {note}." if note else ""

    @on(Button.Pressed, "#preview")
    def action_preview(self) -> None:
        numbers = self.numbers()
        if not self.sources():
            self.say("Pick documents first.", "red")
        elif numbers is not None:
            self.say("Reading the documents …")
            self.run_core("preview", self.sources(), self.tuneforge.session.model, numbers["chunk-tokens"])

    @on(Button.Pressed, "#prepare")
    def action_prepare(self) -> None:
        numbers = self.numbers()
        if not self.sources():
            self.say("Pick documents first.", "red")
            return
        if numbers is None:
            return
        self._stop.clear()
        self.query_one("#prepare", Button).disabled = True
        self.query_one("#stop", Button).disabled = False
        self.query_one("#prepare-progress").display = True
        spec = self.query_one("#generator", Input).value.strip() or None
        self.say("Preparing … (drafts are kept as they arrive: Stop, or a crash, loses at most one chunk)"
                 + (self.note_on(spec) if spec else ""))
        self.run_core("prepare", self.sources(), self.out_dir(), self.tuneforge.session.model, numbers["chunk-tokens"], spec,
                      numbers["questions"], numbers["paraphrases"])

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        """Stop after the chunk being drafted; what is drafted stays in the folder's cache."""
        self._stop.set()
        self.query_one("#stop", Button).disabled = True
        self.say("Stopping after the current chunk …")

    @on(Button.Pressed, "#review")
    def action_review(self) -> None:
        if self.report is None:
            return
        if self.report.generator is None:
            self.tuneforge.use_prepared(self.out_dir())
        else:
            from .review import ReviewScreen

            self.app.push_screen(ReviewScreen(self.out_dir()))

    @work(thread=True, exclusive=True, exit_on_error=False, group="prepare")
    def run_core(self, kind: str, *args: Any) -> None:
        """One core call in this worker; its result (or error) comes back as a PrepareDone message."""
        from tuneforge.core.api import data as data_api

        def progress(state) -> None:
            self.post_message(PrepareProgress(state.done, state.total, state.line()))
            if self._stop.is_set():
                raise KeyboardInterrupt  # drafting turns this into DraftingStopped, with the drafts kept

        if kind == "test":
            result: Any = data_api.test_generator(*args)
        elif kind == "preview":
            result = data_api.preview_chunks(*args, on_progress=progress)
        else:
            sources, out, model, chunk_tokens, spec, questions, paraphrases = args
            result = data_api.prepare_documents(sources, out, model, chunk_tokens, echo=None, generator=spec,
                                                questions_per_chunk=questions, paraphrases=paraphrases, on_progress=progress)
        self.post_message(PrepareDone(kind, result))

    def worker_failed(self, worker: Worker) -> None:
        self.query_one("#prepare", Button).disabled = False
        self.query_one("#stop", Button).disabled = True
        self.say("Stopped: run Prepare again to continue." if getattr(worker.error, "label", "") == "stopped"
                 else "That did not work; see the message.", "yellow")

    def on_prepare_progress(self, message: PrepareProgress) -> None:
        bar = self.query_one("#prepare-progress", ProgressBar)
        bar.display = True
        bar.update(total=message.total, progress=message.done)
        if not self._stop.is_set():
            self.say(message.line)

    def on_prepare_done(self, message: PrepareDone) -> None:
        self.query_one("#prepare", Button).disabled = False
        self.query_one("#stop", Button).disabled = True
        if message.kind == "test":
            spec = self.query_one("#generator", Input).value.strip()
            self.say(f"The generator answered under a JSON schema in {message.result:.1f} s." + self.note_on(spec), "green")
        elif message.kind == "preview":
            self.show_chunks(*message.result)
        else:
            self.show_report(message.result)

    def show_chunks(self, chunks: list[Any], skipped: list[str]) -> None:
        """The chunks in the table: where each is from, its size, how it begins."""
        table = self.query_one("#chunks", DataTable)
        table.clear()
        self.chunks = chunks
        for chunk in chunks:
            table.add_row(*plain_cells(chunk.source.rsplit("/", 1)[-1], str(chunk.tokens),
                                       " ".join(chunk.text.split()[:PREVIEW_WORDS]) + " …"))
        skip_note = f"; {len(skipped)} file(s) skipped: {skipped[0]}" if skipped else ""
        self.say(f"{len(chunks)} chunk(s) from {len({c.source.split('#')[0] for c in chunks})} document(s){skip_note}; "
                 "Enter on one shows it whole")

    @on(DataTable.RowSelected, "#chunks")
    def open_chunk(self, event: DataTable.RowSelected) -> None:
        chunk = self.chunks[event.cursor_row]
        self.app.push_screen(ChunkView(chunk.source, chunk.tokens, chunk.text))

    def show_report(self, report: PrepareReport) -> None:
        """What the run wrote; the way on is the review (pairs) or straight to the Data step (text)."""
        self.report = report
        self.query_one("#prepare-progress").display = False
        review = self.query_one("#review", Button)
        review.label = "Review pairs" if report.generator else "Use for training"
        review.disabled = not report.train_records and not report.pairs_drafted
        self.say(report.summary(self.out_dir()), "green" if report.train_records else "yellow")
        review.focus()
