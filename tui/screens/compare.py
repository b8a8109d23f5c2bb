"""Compare: finished runs side by side, as `tuneforge compare` prints them (method, trainable share, memory, speed,
losses, everyday answers kept, forgetting, accuracy, time)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header

from tuneforge.core.api.evaluation import COLUMNS, LEGEND, compared_run, comparison_rows
from tuneforge.core.runs import RunDir

from ..base import TuneforgeScreen
from ..widgets import KeyFooter, Plain, plain_cells


class CompareScreen(TuneforgeScreen):
    """The trade-offs of the given finished runs, one row each."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, runs: list[RunDir]) -> None:
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        yield Header()
        yield Plain(f"Compare {len(self.runs)} finished runs", classes="step")
        yield DataTable(id="compare", cursor_type="row", zebra_stripes=True)
        yield Plain("\n".join(LEGEND), id="compare-legend", classes="field-help")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#compare", DataTable)
        table.add_columns(*COLUMNS)
        for row in comparison_rows([compared_run(run.path) for run in self.runs]):
            table.add_row(*plain_cells(*row))
        table.focus()
