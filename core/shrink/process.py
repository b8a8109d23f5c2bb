"""A shrink the app starts: `python -m tuneforge.core.shrink SHRINK_DIR`, a job (`core/jobs.py`) in its own
session, so that closing the app does not stop it; Stop sends it SIGINT, on which the healing run
checkpoints and the shrink records `stopped`."""

from __future__ import annotations

import subprocess
import sys

from ..jobs import launch, refuse_if_running
from .job import ShrinkDir


def start_shrink(shrink: ShrinkDir) -> subprocess.Popen:
    """Start (or continue) the shrink in a detached child with its output in SHRINK_DIR/shrink.log."""
    refuse_if_running(shrink)
    shrink.plan()  # a ConfigError unless it is a shrink directory
    return launch(shrink, [sys.executable, "-m", "tuneforge.core.shrink", str(shrink.path)])
