"""Pickers as modals that return the choice: a file or folder (a directory tree plus a path field), and a GGUF to
chat with (the runs' verified files first)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, OptionList, Static
from textual.widgets.option_list import Option

from . import Plain


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
            yield Plain(self.title_text, classes="title")
            yield Input(str(self.start), id="picker-path")
            yield DirectoryTree(self.start, id="picker-tree")
            yield Plain("", id="picker-error", classes="error")
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


class GgufPicker(ModalScreen[Path | None]):
    """The runs' verified GGUF files, newest run first, to chat with; "Other file…" browses for any .gguf."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("b", "browse", "Other file…")]

    def __init__(self, files: list[tuple[str, Path]]) -> None:
        super().__init__()
        self.files = files
        """(run name, verified GGUF) pairs."""

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Plain("Chat with a GGUF: the runs' verified files (Enter picks)", classes="title")
            yield OptionList(*(Option(f"{run}  ·  {path.name}", id=str(path)) for run, path in self.files), id="gguf-files")
            with Horizontal(classes="buttons"):
                yield Button("Other file…", id="picker-browse")
                yield Button("Cancel", id="picker-cancel")

    @on(OptionList.OptionSelected, "#gguf-files")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Path(str(event.option.id)))

    @on(Button.Pressed, "#picker-browse")
    def action_browse(self) -> None:
        self.app.push_screen(PathPicker("Chat with a GGUF file", Path.cwd(), folders=False), self.dismiss)

    @on(Button.Pressed, "#picker-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
