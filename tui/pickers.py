"""A file and folder picker: a directory tree plus a path field, as a modal that returns the choice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Static


class PathPicker(ModalScreen[Path | None]):
    """Pick a file or a folder; returns the path, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, start: Path, folders: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.start = start if start.is_dir() else start.parent if start.parent.is_dir() else Path.home()
        self.folders = folders

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static(self.title_text, classes="title")
            yield Input(str(self.start), id="picker-path")
            yield DirectoryTree(self.start, id="picker-tree")
            yield Static("", id="picker-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Choose", id="picker-choose", variant="primary")
                yield Button("Cancel", id="picker-cancel")

    def on_mount(self) -> None:
        self.query_one(DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#picker-path", Input).value = str(event.path)
        self._choose()

    @on(DirectoryTree.DirectorySelected)
    def _directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        self.query_one("#picker-path", Input).value = str(event.path)

    @on(Button.Pressed, "#picker-choose")
    @on(Input.Submitted, "#picker-path")
    def _choose(self) -> None:
        path = Path(self.query_one("#picker-path", Input).value).expanduser()
        if not path.exists():
            self.query_one("#picker-error", Static).update(f"{path}: no such file or folder")
        elif path.is_dir() and not self.folders:
            self.query_one("#picker-error", Static).update("pick a file, not a folder")
        else:
            self.dismiss(path.resolve())

    @on(Button.Pressed, "#picker-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def browse_into(field: Input, title: str, then: Callable[[], None]) -> None:
    """Open a PathPicker at the field's path (or the working folder); put the choice in `field`, then call `then`."""

    def chosen(path: Path | None) -> None:
        if path is not None:
            field.value = str(path)
            then()

    start = Path(field.value.strip() or Path.cwd()).expanduser()
    field.app.push_screen(PathPicker(title, start), chosen)
