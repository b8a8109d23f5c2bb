"""Progress of long work that is not training (extracting documents, drafting pairs): what is done,
what is left, and when it should end, for the CLI's lines and the app's bar alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


def duration(seconds: float) -> str:
    """1h02m, 3m05s or 42s."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class Progress:
    """One stage's count: `done` of `total` items, of which `skipped` needed no work (a cached draft)."""

    stage: str
    """What is being done, as a person reads it: "extracting", "drafting"."""
    total: int
    done: int = 0
    skipped: int = 0
    detail: str = ""
    """The item just finished, or a running count ("31 pairs")."""
    started: float = field(default_factory=time.monotonic)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the pace of the items that needed work; None before the first of them."""
        worked = self.done - self.skipped
        if worked <= 0:
            return None
        elapsed = (time.monotonic() if now is None else now) - self.started
        return elapsed / worked * (self.total - self.done)

    def line(self) -> str:
        """drafting 12/40 · ETA 3m05s · 31 pairs"""
        parts = [f"{self.stage} {self.done}/{self.total}"]
        left = self.eta()
        if left is not None and self.done < self.total:
            parts.append(f"ETA {duration(left)}")
        if self.detail:
            parts.append(self.detail)
        return " · ".join(parts)


ProgressCallback = Callable[[Progress], None]
"""Told after each item; it must return quickly (the app posts a message, the CLI prints a line)."""
