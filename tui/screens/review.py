"""Review the drafted pairs: a table of every pair (kept, or the gate that dropped it), filtered by
source, with the selected pair's evidence highlighted in its chunk; accept, reject or edit each, then
"Use for training" records the verdicts (reviews.json) and hands train.jsonl and eval.jsonl to Data. Leaving
with Back records them too, so a reopened review shows them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Header, Input, Label, Static
from textual.worker import Worker

from tuneforge.core.api.data import ACCEPTED, REJECTED

from ..base import TuneforgeModal, TuneforgeScreen
from ..widgets import KeyFooter, Plain, plain_cells

if TYPE_CHECKING:
    from tuneforge.core.api.data import Pair

STATUS_WIDTH, SOURCE_WIDTH = 15, 12
"""The verdict's and the source's columns; the question and the answer share the rest of the width."""
TABLE_FRAME = 2 * 4 + 2
"""What a four-column table spends besides its cells: a space each side of every cell, and the scrollbar."""


def text_widths(table_width: int) -> tuple[int, int]:
    """The question's and the answer's column widths in a table `table_width` wide: what the status and source
    columns leave, 3 to 2 (an 80-column terminal: 25 and 18)."""
    spare = max(table_width - STATUS_WIDTH - SOURCE_WIDTH - TABLE_FRAME, 20)
    question = spare * 3 // 5
    return question, spare - question


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class EditPair(TuneforgeModal[dict[str, str] | None]):
    """Rewrite a pair's question and answer; returns the new texts, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, answer: str) -> None:
        super().__init__()
        self.question, self.answer = question, answer

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-pair"):
            yield Plain("Edit the pair (it is accepted as you write it)", classes="title")
            yield Label("question")
            yield Input(self.question, id="edit-question")
            yield Label("answer")
            yield Input(self.answer, id="edit-answer")
            with Horizontal(classes="buttons"):
                yield Button("Save", id="edit-save", variant="primary", compact=True)
                yield Button("Cancel", id="edit-cancel", compact=True)

    @on(Button.Pressed, "#edit-save")
    @on(Input.Submitted)
    def save(self) -> None:
        question, answer = self.query_one("#edit-question", Input).value.strip(), self.query_one("#edit-answer", Input).value.strip()
        if question and answer:
            self.dismiss({"question": question, "answer": answer})

    @on(Button.Pressed, "#edit-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ReviewScreen(TuneforgeScreen):
    """A person in the loop: every drafted pair, its evidence in context, and a verdict."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("a", "accept", "Accept"),
        Binding("r", "reject", "Reject"),
        Binding("e", "edit", "Edit"),
        Binding("ctrl+u", "use", "Use for training"),
    ]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.pairs: dict[str, Pair] = {}
        self.chunks: list[Any] = []
        self.widths = text_widths(80)
        """The question's and the answer's column widths, for the terminal's width."""
        self.reviews: dict[str, dict[str, str]] = {}
        """This session's verdicts and edits, by pair id, saved on leaving (Back or Use for training); earlier sessions'
        are in the pairs already."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Plain(f"Review the drafted pairs · {self.folder.name}", classes="step")
        with Horizontal(id="review-filter"):
            yield Input(compact=True, placeholder="filter by source (part of a file name or page)", id="filter")
        yield DataTable(id="pairs", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="evidence-panel"):
            yield Plain("", id="evidence")
        with Horizontal(classes="buttons"):
            yield Plain("", id="review-status")
            yield Button("Use for training", id="use", variant="success", compact=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        from tuneforge.core.api.data import prepared_pairs

        pairs, self.chunks, _ = prepared_pairs(self.folder)
        self.pairs = {pair.id: pair for pair in pairs}
        self.widths = text_widths(self.app.size.width)
        self.fill()
        self.query_one("#pairs", DataTable).focus()

    def on_resize(self, event: events.Resize) -> None:
        """Questions and answers take the width the terminal has."""
        widths = text_widths(event.size.width)
        if widths != self.widths:
            self.widths = widths
            self.fill()

    def fill(self) -> None:
        """The table rows of the pairs whose source contains the filter text."""
        wanted = self.query_one("#filter", Input).value.strip().casefold()
        table = self.query_one("#pairs", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        question_width, answer_width = self.widths
        table.add_column("status", key="status", width=STATUS_WIDTH)
        table.add_column("source", key="source", width=SOURCE_WIDTH)
        table.add_column("question", key="question", width=question_width)
        table.add_column("answer", key="answer", width=answer_width)
        for pair in self.pairs.values():
            if wanted in pair.source.casefold():
                table.add_row(*plain_cells(self.status(pair), _cut(Path(pair.source).name, SOURCE_WIDTH),
                                           _cut(pair.question, question_width), _cut(pair.answer, answer_width)), key=pair.id)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.show_counts()
        self.show_evidence()

    def show_counts(self) -> None:
        """How many pairs train once this session's verdicts apply, and how many were reviewed."""
        kept = sum(self.keeps(pair) for pair in self.pairs.values())
        reviewed = len(self.reviews.keys() | {pair.id for pair in self.pairs.values() if pair.review})
        self.query_one("#review-status", Static).update(f"{kept} of {len(self.pairs)} kept · {reviewed} reviewed")

    def keeps(self, pair: Pair) -> bool:
        """Whether the pair trains once this session's verdicts are applied."""
        verdict = self.reviews.get(pair.id, {}).get("review")
        return pair.kept if verdict is None else verdict == ACCEPTED

    def status(self, pair: Pair) -> Text:
        review = self.reviews.get(pair.id, {})
        edited = " ✎" if "question" in review or pair.edited else ""
        if self.keeps(pair):
            return Text(f"✓ kept{edited}", style="green")
        why = "rejected" if review.get("review") == REJECTED else pair.dropped or "dropped"
        return Text(_cut(f"✗ {why}", STATUS_WIDTH), style="red")

    def current(self) -> Pair | None:
        """The pair under the cursor."""
        table = self.query_one("#pairs", DataTable)
        if not table.row_count:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.pairs[str(row_key.value)]

    @on(Input.Changed, "#filter")
    def refilter(self) -> None:
        self.fill()

    @on(DataTable.RowHighlighted)
    def show_evidence(self) -> None:
        """The pair in full, and its chunk with the evidence highlighted (or said missing)."""
        from tuneforge.core.api.data import evidence_span

        pair = self.current()
        panel = self.query_one("#evidence", Static)
        if pair is None:
            panel.update("no pair matches the filter")
            return
        review = self.reviews.get(pair.id, {})
        text = Text()
        text.append("Q ", style="bold")
        text.append(review.get("question", pair.question) + "\n")
        text.append("A ", style="bold")
        text.append(review.get("answer", pair.answer) + "\n")
        text.append(f"{pair.source}: ", style="dim")
        chunk = self.chunks[pair.chunk].text
        span = evidence_span(pair.evidence, chunk)
        if span is None:
            text.append(chunk + "\n")
            text.append(f"evidence not in this chunk: “{pair.evidence}”", style="bold red")
        else:
            text.append(chunk[: span[0]])
            text.append(chunk[span[0]: span[1]], style="bold black on yellow")
            text.append(chunk[span[1]:])
        panel.update(text)

    def mark(self, pair: Pair, verdict: str, edits: dict[str, str] | None = None) -> None:
        self.reviews[pair.id] = {**self.reviews.get(pair.id, {}), **(edits or {}), "review": verdict}
        table = self.query_one("#pairs", DataTable)
        table.update_cell(pair.id, "status", self.status(pair))
        if edits:
            table.update_cell(pair.id, "question", Text(_cut(edits["question"], self.widths[0])))
            table.update_cell(pair.id, "answer", Text(_cut(edits["answer"], self.widths[1])))
        self.show_counts()
        self.show_evidence()

    def action_accept(self) -> None:
        if (pair := self.current()) is not None:
            self.mark(pair, ACCEPTED)

    def action_reject(self) -> None:
        if (pair := self.current()) is not None:
            self.mark(pair, REJECTED)

    def action_edit(self) -> None:
        pair = self.current()
        if pair is None:
            return
        review = self.reviews.get(pair.id, {})

        def edited(texts: dict[str, str] | None) -> None:
            if texts is not None:
                self.mark(pair, ACCEPTED, texts)

        self.app.push_screen(EditPair(review.get("question", pair.question), review.get("answer", pair.answer)), edited)

    @on(Button.Pressed, "#use")
    def action_use(self) -> None:
        self.query_one("#use", Button).disabled = True
        self.save_reviews(hand_over=True)

    def action_back(self) -> None:
        """Back, keeping this session's verdicts: they are saved first, as Use for training saves them."""
        if self.reviews:
            self.save_reviews(hand_over=False)
        else:
            self.app.pop_screen()

    @work(thread=True, exclusive=True, exit_on_error=False, group="review")
    def save_reviews(self, hand_over: bool) -> None:
        """Write the verdicts and the split in this worker, then hand the folder to the Data step (or go back)."""
        from tuneforge.core.api.data import review_pairs

        review_pairs(self.folder, self.reviews)
        if hand_over:
            self.app.call_from_thread(self.tuneforge.use_prepared, self.folder)
        else:
            self.app.call_from_thread(self.app.pop_screen)

    def worker_failed(self, worker: Worker) -> None:
        self.query_one("#use", Button).disabled = False
