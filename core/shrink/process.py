"""A shrink the app starts: `python -m tuneforge.core.shrink SHRINK_DIR` in its own session, so that
closing the app does not stop it; Stop sends it SIGINT, on which the healing run checkpoints and
the shrink records `stopped`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from ..allocator import training_environment
from ..errors import ConfigError
from ..events import Failed, Launched, Stopped
from ..paths import runs_dir
from ..runs import running_pid
from .job import ShrinkDir, resume_hint, shrink_state
from .plan import PLAN_FILE


def start_shrink(shrink: ShrinkDir) -> subprocess.Popen:
    """Start (or continue) the shrink in a detached child with its output in SHRINK_DIR/shrink.log."""
    if shrink_state(shrink) == "running":
        raise ConfigError(f"{shrink.path}: is already shrinking", "watch it, or stop it before starting it again")
    shrink.plan()  # a ConfigError unless it is a shrink directory
    command = [sys.executable, "-m", "tuneforge.core.shrink", str(shrink.path)]
    env = training_environment({**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"})
    with shrink.log_file.open("ab") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, cwd=shrink.path, env=env)
    shrink.record(Launched(pid=child.pid, command=command))
    return child


def shrink_pid(shrink: ShrinkDir) -> int | None:
    """The process running the shrink, while it runs."""
    return running_pid(shrink.history())


def stop_shrink(shrink: ShrinkDir) -> bool:
    """Ask the shrink to stop (its healing run checkpoints first); False when it is not running."""
    pid = shrink_pid(shrink)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    return True


def why_it_ended(shrink: ShrinkDir) -> tuple[str, str]:
    """(message, hint) of a stopped or failed shrink: its own words, or, when its process died without
    any, that it died and where its output is."""
    last = shrink.history().lifecycle
    if isinstance(last, (Stopped, Failed)):
        return last.error, last.hint
    return (f"the shrink process ended without a word (see {shrink.log_file})",
            f"{resume_hint(shrink)}; a stage continues from its last checkpoint")


def list_shrinks() -> list[ShrinkDir]:
    """Every shrink directory under TUNEFORGE_HOME/runs, newest first."""
    root = runs_dir()
    if not root.is_dir():
        return []
    found = [path for path in root.iterdir() if (path / PLAN_FILE).is_file()]
    return [ShrinkDir(path) for path in sorted(found, key=lambda p: (p / PLAN_FILE).stat().st_mtime, reverse=True)]
