"""Text shown as written: help, paths, answers and errors hold square brackets (`[INST]`, `[1]`, `[12 chars]`)
that Rich would read as markup and drop, so no widget of the app parses markup from a string."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static


class Plain(Static):
    """A Static whose strings are never read as Rich markup (a Rich Text keeps its own styles)."""

    def __init__(self, content: Any = "", **kwargs: Any) -> None:
        super().__init__(content, markup=False, **kwargs)


def plain_cells(*cells: Any) -> tuple[Any, ...]:
    """DataTable cells with each string as plain Text: the table reads a string cell as markup."""
    return tuple(Text(cell) if isinstance(cell, str) else cell for cell in cells)
