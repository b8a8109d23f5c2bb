"""Which process of a distributed run this is: a leaf module, so that the events (which stamp every line with
the rank) and the runner read it without importing the launcher's setup."""

from __future__ import annotations

import os


def process_rank() -> int:
    """This process's rank in a distributed run (0 when it runs alone)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Whether this process writes the run's files and events (rank 0, or a run of one process)."""
    return process_rank() == 0
