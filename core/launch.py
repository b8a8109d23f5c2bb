"""Start and stop a run's training child exactly as a user would: `tuneforge train RUN_DIR`.

The child runs in its own session, so closing the terminal or the TUI does not stop it;
it appends to the run's events.jsonl, which any viewer can tail and re-attach to. Stopping
sends SIGINT, on which the child checkpoints at the end of the current step and exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .allocator import training_environment
from .errors import ConfigError
from .runs import RunDir


def training_command(run: RunDir, resume: bool = False) -> list[str]:
    """The command line of the training child (what a person would type, through this Python)."""
    return [sys.executable, "-m", "tuneforge.core.train", *(["--resume"] if resume else []), str(run.path)]


def start_training(run: RunDir, resume: bool = False) -> subprocess.Popen:
    """Launch the training child detached from this process; its stderr goes to train.log.

    A `launched` event with the child's pid marks the run as running from this moment,
    before the child has imported torch and written its own `started` event.
    """
    if run.training_pid() is not None:
        raise ConfigError(f"{run.path}: is already training", "watch it, or stop it before starting it again")
    if resume and run.last_checkpoint() is None:
        raise ConfigError(f"{run.path}: has no complete checkpoint to resume from", "start it from the beginning instead")
    command = training_command(run, resume)
    # Progress bars would fill train.log (events.jsonl has the progress); tcmalloc when installed.
    env = training_environment({**os.environ, "TQDM_DISABLE": "1"})
    with run.log_file.open("ab") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                 start_new_session=True, cwd=run.path, env=env)
    run.append_event("launched", pid=child.pid, command=command)
    return child


def stop_training(run: RunDir) -> bool:
    """Ask the run's training child to checkpoint and exit (SIGINT); False when nothing is running."""
    pid = run.training_pid()
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    return True
