"""Export: pick GGUF types (with estimated sizes), export and verify, read the report, get the Ollama command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Header, SelectionList, Static
from textual.widgets.selection_list import Selection
from textual.worker import Worker

from tuneforge.core.memory import model_shape
from tuneforge.core.runs import RunDir
from tuneforge.exporters.gguf.types import GGUF_TYPES, file_gb
from tuneforge.exporters.report import ExportReport, passed_files, read_report

from ..base import TuneforgeScreen
from ..widgets import KeyFooter, Plain, WrappedLog

OFFERED_TYPES = tuple(spec for spec in GGUF_TYPES.values() if spec.summary)
"""The types the app lists: those the type table describes."""
PRESELECTED = ("q8_0",)
"""Ticked at first: near-lossless, and small models quantize badly below 8 bits."""


def size_label(params_b: float | None, qtype: str) -> str:
    """The estimated file size of `qtype` for a model of `params_b` billion parameters."""
    if params_b is None:
        return "size unknown"
    gib = file_gb(params_b, qtype)
    return f"~{gib:.1f} GiB" if gib >= 1 else f"~{gib * 1024:.0f} MiB"


def type_label(qtype: str, params_b: float | None, picked: bool) -> str:
    """A GGUF type's line in the list: picked or not (in words, not only colour), its name, size and summary."""
    return f"{'✓' if picked else ' '} {qtype:<7} {size_label(params_b, qtype):>11}  {GGUF_TYPES[qtype].summary}"


def report_text(report: ExportReport, run: RunDir) -> Text:
    """export-report.json as a person reads it, plus where the files go next (Ollama, llama.cpp)."""
    text = Text()
    for entry in report.files:
        text.append(f"{Path(entry.file).name}  {entry.gguf_type}  {entry.size_bytes / 2**20:.0f} MiB  ", style="bold")
        text.append("PASS\n" if entry.passed else "FAIL\n", style="bold green" if entry.passed else "bold red")
        for check in entry.checks:
            text.append(f"  {'✓' if check.passed else '✗'} {check.name:<11}", style="green" if check.passed else "red")
            text.append(f"{check.detail}\n")
            if check.hint and not check.passed:
                text.append(f"    hint: {check.hint}\n", style="dim")
    if report.modelfile:
        text.append("\nOllama: ", style="bold")
        text.append(f"{report.modelfile}\n  {report.ollama_command or ''}\n")
    text.append("\nllama.cpp, LM Studio: ", style="bold")
    text.append(f"the .gguf files in {run.export}")
    return text


@dataclass
class ExportProgress(Message):
    """A line of the export's progress, from its worker."""

    line: str


@dataclass
class ExportDone(Message):
    """The export ended: whether every file passed."""

    passed: bool


class ExportScreen(TuneforgeScreen):
    """Step 4: GGUF export with verification."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("x", "export", "Export"),
        Binding("c", "chat", "Chat"),
    ]

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run
        shape = model_shape(run.load_config().model)
        self.params_b = shape[0] if shape else None
        """The model's size in billions of parameters (None: unknown), for the files' estimated sizes."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Plain(f"Step 4 of 4 · Export {self.run.name} to GGUF (each file is verified against the trained model)",
                     classes="step")
        with Horizontal(id="export-top"):
            yield SelectionList[str](
                *(Selection(type_label(t.name, self.params_b, t.name in PRESELECTED), t.name, t.name in PRESELECTED, id=t.name)
                  for t in OFFERED_TYPES),
                id="quants",
            )
            yield WrappedLog(id="export-log")
        with VerticalScroll(id="export-results"):
            yield Plain("No export yet. Pick the types and press x.", id="report")
        with Horizontal(classes="buttons"):
            yield Button("Export and verify", id="export", variant="primary", compact=True)
            yield Button("Chat", id="chat", variant="success", compact=True)
        yield KeyFooter()

    @on(SelectionList.SelectedChanged, "#quants")
    def mark_selected(self, event: SelectionList.SelectedChanged) -> None:
        """A picked type says so in words (✓), not only in colour."""
        picked = set(event.selection_list.selected)
        for spec in OFFERED_TYPES:
            event.selection_list.replace_option_prompt(spec.name, type_label(spec.name, self.params_b, spec.name in picked))

    def on_mount(self) -> None:
        report = read_report(self.run.export)
        if report:
            self.show_report(report)
        self.query_one("#chat", Button).disabled = not passed_files(self.run.export)
        self.query_one("#quants", SelectionList).focus()

    @on(Button.Pressed, "#export")
    def action_export(self) -> None:
        quants = self.query_one("#quants", SelectionList).selected
        if not quants:
            self.notify("Pick at least one GGUF type.", severity="warning")
            return
        self.query_one("#export", Button).disabled = True
        self.query_one("#export-log", WrappedLog).write_line(f"exporting {', '.join(quants)} …")
        self.query_one("#report", Static).update(
            f"Exporting {', '.join(quants)}: each file is written, then verified against the trained model "
            "(a few minutes on a CPU; the log beside the types says which step runs). The report appears here when it is done.")
        self.export(list(quants))

    @work(thread=True, exclusive=True, exit_on_error=False, group="export")
    def export(self, quants: list[str]) -> None:
        """Export and verify in this worker; progress and the outcome come back as messages."""
        from tuneforge.core.api.export import export

        result = export(self.run.path, quants, echo=lambda line: self.post_message(ExportProgress(line)))
        self.post_message(ExportDone(result.passed))

    def worker_failed(self, worker: Worker) -> None:
        self.query_one("#export", Button).disabled = False

    def on_export_progress(self, message: ExportProgress) -> None:
        self.query_one("#export-log", WrappedLog).write_line(message.line)

    def on_export_done(self, message: ExportDone) -> None:
        self.query_one("#export", Button).disabled = False
        report = read_report(self.run.export)
        if report:
            self.show_report(report)
        self.query_one("#chat", Button).disabled = not passed_files(self.run.export)
        if message.passed:
            self.notify("Every file passed verification. Press c to chat with it.", title="exported")
        else:
            self.notify("A file failed verification; see the report.", title="export", severity="error")

    def show_report(self, report: ExportReport) -> None:
        """The verification report: each file with PASS/FAIL, then each check with its figures."""
        self.query_one("#report", Static).update(report_text(report, self.run))

    @on(Button.Pressed, "#chat")
    def action_chat(self) -> None:
        if not self.query_one("#chat", Button).disabled:
            self.tuneforge.open_chat(self.run)
