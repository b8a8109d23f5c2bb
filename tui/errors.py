"""Errors reach the person as a modal with the core's message and hint, never as a traceback."""

from __future__ import annotations

import re
import traceback

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button

from tuneforge.core.errors import TuneforgeError
from tuneforge.core.paths import tuneforge_home

from .widgets import Plain


class ErrorModal(ModalScreen[None]):
    """A problem, its hint, and an OK button."""

    BINDINGS = [Binding("escape,enter", "dismiss", "Close")]

    def __init__(self, message: str, hint: str) -> None:
        super().__init__()
        self.message = message
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box"):
            yield Plain("Problem", classes="title")
            yield Plain(self.message, id="error-message")
            if self.hint:
                yield Plain(f"Hint: {self.hint}", id="error-hint")
            yield Button("OK", id="error-ok", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss()


APP_WORDS = (
    (re.compile(r"`?tuneforge train --resume [^`\s]+`?"), "Resume (r) in the run's view"),
    (re.compile(r"`?tuneforge shrink --resume [^`\s]+`?"), "Resume (r) in the shrink's view"),
    (re.compile(r"`--model default`(?: \(the built-in [^)]*\))?"), "the built-in model (the first row of the Model step)"),
    (re.compile(r"`?--method (\w+)`?"), r"method \1"),
    (re.compile(r"`?--load-in-4bit`?"), "4-bit base: on"),
)
"""The core's hints name CLI commands; in the app the same step is a key or a row."""


def in_app_words(hint: str) -> str:
    """A core hint as the app's own controls say it."""
    for pattern, words in APP_WORDS:
        hint = pattern.sub(words, hint)
    return hint


def describe(exc: BaseException) -> tuple[str, str]:
    """(message, hint) for an exception: the core's own, or for an unforeseen one a log file to read."""
    if isinstance(exc, TuneforgeError):
        return exc.message, in_app_words(exc.hint)
    log = tuneforge_home() / "tui.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as handle:
            traceback.print_exception(exc, file=handle)
    except OSError:
        return f"unexpected error: {type(exc).__name__}: {exc}", ""
    return f"unexpected error: {type(exc).__name__}: {exc}", f"the details are in {log}"


def show_error(app: App, exc: BaseException) -> None:
    """Show `exc` in an ErrorModal (call on the app's thread)."""
    app.push_screen(ErrorModal(*describe(exc)))
