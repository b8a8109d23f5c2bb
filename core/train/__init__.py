"""Training: load the base for a method, run TRL's SFT trainer, report events to the run directory.

`python -m tuneforge.core.train RUN_DIR` is the entry the TUI spawns (the same as `tuneforge train RUN_DIR`).
"""

from .runner import TrainResult, TrainingStopped, train_run

__all__ = ["TrainResult", "TrainingStopped", "train_run"]
