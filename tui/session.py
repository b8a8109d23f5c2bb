"""What the person chose so far in this app session: the model, the data and its check."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneforge.core.api.data import DataReport
    from tuneforge.core.jobs import JobDir


def model_label(model: str) -> str:
    """A model reference as a person reads it: the built-in one by its name, else the last part of its folder, file
    or hub id."""
    from tuneforge.core.catalog import DEFAULT_MODEL

    return "SmolLM2-135M-Instruct (built in)" if model == DEFAULT_MODEL else Path(model).name


@dataclass
class Session:
    """The guided flow's choices, shared by the screens; nothing here is the state of a run."""

    model: str = "default"
    """The base model reference, as the CLI's --model takes it."""
    data: str | None = None
    """The checked training data file or folder."""
    eval_data: str | None = None
    """Held-out data that came with `data` (a prepared folder's eval.jsonl); None: a split of `data`."""
    max_length: int = 512
    eval_split: float | None = None
    """The share of `data` held out; None = as a run settles it (none of a small set of answers, else 0.1)."""
    report: DataReport | None = None
    """The last data check of `data` with `model`."""
    children: dict[JobDir, subprocess.Popen[Any]] = field(default_factory=dict)
    """Training and shrink children this app launched (by their run or shrink), so they are reaped when they exit."""

    @property
    def model_label(self) -> str:
        """The session's model as a person reads it (see `model_label`)."""
        return model_label(self.model)

    def reap_children(self) -> None:
        """Collect the exit status of finished children (else they linger as zombies while the app runs);
        a child that died without saying why (killed, out of memory) gets its `failed` event written."""
        from tuneforge.core.diagnosis import record_death
        from tuneforge.core.runs import RunDir

        for job, child in list(self.children.items()):
            if child.poll() is not None:
                del self.children[job]
                if isinstance(job, RunDir):  # a shrink reads its own death off its events
                    record_death(job, child.returncode)
