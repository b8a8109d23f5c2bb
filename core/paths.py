"""Where tuneforge keeps its state: runs and imported models under TUNEFORGE_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def tuneforge_home() -> Path:
    """The root of all tuneforge state; `$TUNEFORGE_HOME` or the platform data dir."""
    env = os.environ.get("TUNEFORGE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    from platformdirs import user_data_dir

    return Path(user_data_dir("tuneforge", appauthor=False))


def runs_dir() -> Path:
    """The folder holding one sub-folder per run."""
    return tuneforge_home() / "runs"


def models_cache_dir() -> Path:
    """The folder holding base models imported from GGUF files as HF checkpoints."""
    return tuneforge_home() / "models"
