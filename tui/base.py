"""What every screen of the app has: a typed way to the app, and one way a failed worker reaches the person.

A worker (`@work(thread=True, exit_on_error=False)`) that raises ends in the ERROR state; the screen
that started it shows the error with its hint (`errors.show_error`) and calls `worker_failed`, where it
puts back what it disabled while the worker ran. So a worker needs no `try` of its own to fail well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar, cast

from textual.screen import ModalScreen, Screen
from textual.worker import Worker, WorkerState

from .errors import show_error

if TYPE_CHECKING:
    from .app import TuneforgeApp

Result = TypeVar("Result")


class AppScreenMixin:
    """The typed app accessor and the worker-error handler (mixed into Screen and ModalScreen)."""

    @property
    def tuneforge(self) -> TuneforgeApp:
        """The running TuneforgeApp (Textual types `self.app` as any App)."""
        return cast("TuneforgeApp", self.app)  # type: ignore[attr-defined]

    def show_error(self, exc: BaseException) -> None:
        """Show `exc` with its hint in a modal (call on the app's thread)."""
        show_error(self.tuneforge, exc)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.show_error(event.worker.error)
            self.worker_failed(event.worker)

    def worker_failed(self, worker: Worker) -> None:
        """Put back what the screen changed while `worker` ran (a disabled button); nothing by default."""


class TuneforgeScreen(AppScreenMixin, Screen):
    """A full screen of the app."""


class TuneforgeModal(AppScreenMixin, ModalScreen[Result], Generic[Result]):
    """A modal of the app that returns a `Result`."""
