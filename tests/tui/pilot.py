"""Helpers for driving the app with Textual's Pilot."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot

from tuneforge.core.hardware import Hardware

CPU_MACHINE = Hardware(cuda=False, gpu_name=None, vram_total_gb=0.0, vram_free_gb=0.0, bf16=False,
                       ram_total_gb=24.0, ram_available_gb=18.0, disk_free_gb=100.0, cpu_cores=2)
"""A fixed machine, so screens (and snapshots) do not depend on the one running the tests."""
SIZE = (80, 24)
"""The smallest terminal the app is laid out for."""


async def wait_until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 120, what: str = "") -> None:
    """Let the app run until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await pilot.pause(0.2)


def text_of(app, selector: str) -> str:
    """The plain text a Static shows."""
    return str(app.screen.query_one(selector).render())
