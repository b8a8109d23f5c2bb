"""Start and watch a run's training child: `python -m tuneforge.core.train RUN_DIR`.

Training always runs in a child process, so that whoever started it survives whatever ends
it: the kernel's out-of-memory killer, a kill -9, a crash in a native library. The TUI
starts the child detached in its own session (closing the TUI does not stop training) and
tails events.jsonl; `tuneforge train` runs it in the foreground, relays its progress lines
and, when it dies without a word, records and reports why. Stopping sends SIGINT, on which
the child checkpoints at the end of the current step and exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import IO, Callable

from .allocator import training_environment
from .errors import ConfigError
from .runs import RunDir, failure_cause, oom_kills, record_death
from .train.result import TrainingFailed, TrainingStopped, TrainResult


def training_command(run: RunDir, resume: bool = False, accept_changes: bool = False) -> list[str]:
    """The command line of the training child (through this Python)."""
    flags = (["--resume"] if resume else []) + (["--accept-changes"] if accept_changes else [])
    return [sys.executable, "-m", "tuneforge.core.train", *flags, str(run.path)]


def _spawn(run: RunDir, resume: bool, accept_changes: bool, stdout: int | IO[str], detached: bool) -> subprocess.Popen:
    """Start the child with its stderr appended to train.log, and record a `launched` event.

    The event (with the child's pid and the kernel's out-of-memory count) marks the run as
    running from this moment, before the child has imported torch and written `started`.
    """
    run.load_config()  # a ConfigError unless this is a run directory with a readable config.yaml
    if run.training_pid() is not None:
        raise ConfigError(f"{run.path}: is already training", "watch it, or stop it before starting it again")
    run.checkpoint_to_train_from(resume)  # refused here, before a child starts, when there is nothing to do
    command = training_command(run, resume, accept_changes)
    # Progress bars would fill train.log (events.jsonl has the progress); tcmalloc when installed.
    env = training_environment({**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"})
    with run.log_file.open("ab") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=log, text=True,
                                 start_new_session=detached, cwd=run.path, env=env)
    run.append_event("launched", pid=child.pid, oom_kills=oom_kills(), command=command)
    return child


def start_training(run: RunDir, resume: bool = False) -> subprocess.Popen:
    """Launch the training child detached from this process (its own session); returns at once."""
    return _spawn(run, resume, False, subprocess.DEVNULL, detached=True)


def train_in_child(run: RunDir, resume: bool = False, accept_changes: bool = False,
                   echo: Callable[[str], None] | None = print) -> TrainResult:
    """Train `run` in a child process and wait for it, relaying its progress lines to `echo`.

    Ctrl-C in the terminal reaches the child too (same process group): it checkpoints and
    stops, and this raises TrainingStopped. A child that fails raises TrainingFailed with its
    own message and exit code; one that dies without a word (out of memory, killed) gets a
    `failed` event written here, with the cause and how to resume.
    """
    child = _spawn(run, resume, accept_changes, subprocess.PIPE, detached=False)
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # the child handles Ctrl-C; this process waits for it
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if echo:
                echo(line.rstrip("\n"))
        returncode = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        if child.poll() is None:  # this process is being torn down: do not leave the child behind
            child.send_signal(signal.SIGINT)
    return _outcome(run, returncode)


def _outcome(run: RunDir, returncode: int) -> TrainResult:
    """The child's result, or the error that says how it ended."""
    record_death(run, returncode)
    last = run.last_lifecycle_event()
    if returncode == 0 and last.get("event") == "finished":
        return TrainResult.from_event(last)
    message, hint = failure_cause(run, returncode)
    if last.get("event") == "stopped":
        raise TrainingStopped(message, hint)
    raise TrainingFailed(message, hint, exit_code=returncode if returncode > 0 else 128 - returncode)  # 137: killed


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
