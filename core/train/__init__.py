"""Training: load the base for a method, run TRL's trainers, report events to the run directory.

`python -m tuneforge.core.train RUN_DIR` is the child process that trains (what `tuneforge train`
and the TUI start). Importing this package stays light: the runner, which imports torch and
transformers, loads on first use of `train_run`.
"""

from typing import Any

from ..errors import TrainingFailed, TrainingStopped
from ..events import TrainResult

__all__ = ["TrainResult", "TrainingFailed", "TrainingStopped", "train_run"]


def __getattr__(name: str) -> Any:
    if name == "train_run":
        from .runner import train_run

        return train_run
    raise AttributeError(name)
