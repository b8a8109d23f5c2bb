"""The error hierarchy: every foreseeable failure carries a message and a hint.

The CLI prints them as `error: …` / `hint: …` and exits with the class's exit code; the
TUI shows them in a modal (tui/errors.py), or in the pane or report they concern. Anything else is
a bug and may show a traceback.
"""

from __future__ import annotations

import sys


class TuneforgeError(Exception):
    """A failure a person can act on: what went wrong, and what to do about it."""

    exit_code = 1
    label = "error"
    """How the CLI's line begins: `error: …`, or `stopped: …` for a stop the person asked for."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ConfigError(TuneforgeError):
    """A run configuration or command-line option is invalid."""

    exit_code = 2


class DataError(TuneforgeError):
    """A dataset file cannot be read or would train nothing."""

    exit_code = 3


class ModelError(TuneforgeError):
    """A base model cannot be found, loaded, or is not supported."""

    exit_code = 4


class ResourceError(TuneforgeError):
    """Not enough memory, disk or device for what was asked."""

    exit_code = 5


class ExportError(TuneforgeError):
    """A model cannot be exported or the export failed verification."""

    exit_code = 6


class GeneratorError(TuneforgeError):
    """The model drafting training pairs cannot be reached or loaded, or stopped answering."""

    exit_code = 7


class PublishError(TuneforgeError):
    """The Hugging Face Hub could not be reached, or refused an upload."""

    exit_code = 8


def print_error(exc: TuneforgeError) -> None:
    """The one clean form of a foreseeable failure on stderr: `error: …` (or the error's own label) and `hint: …`."""
    print(f"{exc.label}: {exc.message}", file=sys.stderr, flush=True)
    if exc.hint:
        print(f"hint: {exc.hint}", file=sys.stderr, flush=True)


class RewardError(TuneforgeError):
    """A GRPO reward failed: it raised, or returned something other than a number per answer (core/rewards.py)."""

    exit_code = 3


class TrainingStopped(TuneforgeError):
    """Training was stopped on request (Ctrl-C, SIGTERM, Stop in the UI) after a checkpoint."""

    exit_code = 130
    label = "stopped"  # asked for, not an error


class TrainingFailed(TuneforgeError):
    """Training failed in the child process; message and hint come from its `failed` event or its log."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code
