"""Why a run failed or stopped, also when its training child died before it could say.

A child that fails says why in a `failed` event. One killed from outside (the kernel's
out-of-memory killer, a kill -9, a crash in a native library) says nothing: its exit, the
kernel's out-of-memory count and the end of its train.log tell instead, and whoever notices
first (`tuneforge train`, the app) records that as the `failed` event it could not write.
"""

from __future__ import annotations

import os
import signal

from .events import Failed, Launched, RunHistory, Started, Stopped
from .jobs import oom_kills, pid_alive
from .runs import RunDir


def failure_cause(run: RunDir, returncode: int | None = None, history: RunHistory | None = None) -> tuple[str, str]:
    """Why a run stopped or failed, as (message, hint): its last stopped/failed event, or else —
    for a child that died before it could say (killed, out of memory) — what its exit, the
    kernel's out-of-memory count and the last lines of its train.log tell."""
    history = history or run.history()
    last = history.lifecycle
    if isinstance(last, (Stopped, Failed)):
        return last.error or "stopped", last.hint
    resume = run.resume_hint()
    kills_then = last.oom_kills if isinstance(last, (Launched, Started)) else None
    kills_now = oom_kills()
    # No final event and the kernel killed for memory meanwhile: a launcher (torchrun) exits 1 when it
    # loses a worker that way, so the exit code alone cannot tell.
    if kills_then is not None and kills_now is not None and kills_now > kills_then:
        used = history.last_step.memory_gb if history.last_step else None
        detail = f": its last step used {used:.1f} GB of this machine's {_total_ram_gb():.1f} GB" if used else ""
        return (f"the training process was killed by the out-of-memory killer{detail}",
                f"lower batch_size or max_length in config.yaml, or use --method qlora; then {resume}")
    tail = run.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-20:] if run.log_file.is_file() else []
    said = [index for index, line in enumerate(tail) if line.startswith("error: ")]
    if said:  # it failed before it started training, and said why on stderr (train.log)
        after = tail[said[-1] + 1] if said[-1] + 1 < len(tail) else ""
        return tail[said[-1]].removeprefix("error: "), after.removeprefix("hint: ") if after.startswith("hint: ") else resume
    how = f"was killed by {signal.Signals(-returncode).name}" if returncode is not None and returncode < 0 else "ended without a word"
    words = " / ".join(line.strip() for line in tail[-3:] if line.strip())
    return f"the training process {how}" + (f"; the end of train.log: {words}" if words else ""), resume


def record_death(run: RunDir, returncode: int | None = None, history: RunHistory | None = None) -> Failed | None:
    """Write the `failed` event a killed child could not write (once); None while it runs or when it said why.

    `history` is the run's, when the caller holds one that is up to date (a live view).
    """
    history = history or run.history()
    last = history.lifecycle
    if not isinstance(last, (Launched, Started)) or pid_alive(last.pid):
        return None
    message, hint = failure_cause(run, returncode, history)
    return run.record(Failed(error=message, hint=hint, returncode=returncode))


def _total_ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0
