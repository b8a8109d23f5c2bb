"""What more than one screen uses (the file and GGUF pickers are in `pickers.py`).

Here: the app's own variants of Textual widgets: text shown as written (help, paths, answers and errors hold square
brackets, `[INST]` or `[1]`, that Rich would read as markup and drop), and a footer that fits 80 columns."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Footer, RichLog, Static


class Plain(Static):
    """A Static whose strings are never read as Rich markup (a Rich Text keeps its own styles)."""

    def __init__(self, content: Any = "", **kwargs: Any) -> None:
        super().__init__(content, markup=False, **kwargs)


def plain_cells(*cells: Any) -> tuple[Any, ...]:
    """DataTable cells with each string as plain Text: the table reads a string cell as markup."""
    return tuple(Text(cell) if isinstance(cell, str) else cell for cell in cells)


class WrappedLog(RichLog):
    """A log pane whose long lines wrap at its width instead of running off it, read as written (no markup)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(wrap=True, markup=False, max_lines=200, **kwargs)
        self.written: list[str] = []
        """Every line written, unwrapped."""

    def write_line(self, line: str) -> None:
        """Add one line at the bottom."""
        self.written = [*self.written[-199:], line]
        self.write(Text(line))

    def write_lines(self, lines: list[str]) -> None:
        """Add lines at the bottom."""
        for line in lines:
            self.write_line(line)


class KeyFooter(Footer):
    """The key bar, compact and without the command palette's entry (ctrl+p still opens it; `?` lists every key),
    so a screen's keys and ^q Quit fit an 80-column terminal."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(show_command_palette=False, compact=True, **kwargs)
