"""Reading a run's events.jsonl in tests: the loss of each step, and waiting for an event a child writes."""

from __future__ import annotations

import time
from collections.abc import Callable

from tuneforge.core.events import Event
from tuneforge.core.runs import RunDir


def step_losses(run: RunDir) -> dict[int, float]:
    """The loss of each step; a step logged twice (before a kill and after resume) keeps its last value."""
    return {e.step: e.loss for e in run.history().steps}


def wait_for(run: RunDir, predicate: Callable[[Event], bool], timeout: float = 300) -> Event:
    """The newest event matching `predicate`, once one is written; fails with the run's train.log after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in run.history().events if predicate(e)]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no matching event in {timeout} s; log:\n{run.log_file.read_text() if run.log_file.exists() else ''}")
