"""How small to shrink a finished run: the form the run view opens (the shrink's own view is `shrink.py`)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from tuneforge.core.api.shrink import model_layers
from tuneforge.core.runs import RunDir

from ..base import TuneforgeModal
from ..widgets import Plain


class ShrinkForm(TuneforgeModal[tuple[int, str] | None]):
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
