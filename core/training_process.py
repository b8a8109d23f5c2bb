"""Start and watch a run's training child: `python -m tuneforge.core.train RUN_DIR`, or, for a run
over several GPUs or processes, `accelerate launch` starting one such child per process.

Training always runs in a child process, in its own session, so that whoever started it
survives whatever ends it (the kernel's out-of-memory killer, a kill -9, a crash in a native
library) and closing the terminal or the TUI does not stop it. The TUI tails events.jsonl;
`tuneforge train` waits in the foreground, relays the progress lines and, when the child dies
without a word, records and reports why. Stopping (the TUI's Stop, Ctrl-C in `tuneforge
train`) sends SIGINT to every training process, on which they checkpoint together at the end
of the current step and exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import IO

from .accelerate_setup import Machine, check_world, launch_command, launch_script, launch_summary, world_size
from .allocator import training_environment
from .diagnosis import failure_cause, oom_kills, record_death
from .errors import ConfigError
from .events import Finished, Launched, Stopped
from .hardware import detect
from .runs import RunDir
from .tracking import tracking_environment
from .train.result import TrainingFailed, TrainingStopped, TrainResult


def training_command(run: RunDir, resume: bool = False, accept_changes: bool = False) -> list[str]:
    """The command line of a training child (through this Python)."""
    return [sys.executable, "-m", "tuneforge.core.train", *_child_flags(resume, accept_changes), str(run.path)]


def _child_flags(resume: bool, accept_changes: bool) -> list[str]:
    return (["--resume"] if resume else []) + (["--accept-changes"] if accept_changes else [])


def _spawn(run: RunDir, resume: bool, accept_changes: bool, stdout: int | IO[str], machine: Machine,
           echo: Callable[[str], None] | None = None) -> subprocess.Popen:
    """Start the child in its own session with its stderr appended to train.log, and record a `launched` event.

    The event (with the child's pid and the kernel's out-of-memory count) marks the run as
    running from this moment, before the child has imported torch and written `started`.
    A run of several processes is told to `echo` (how many, and where its launch command is).
    """
    config = run.load_config()  # a ConfigError unless this is a run directory with a readable config.yaml
    if run.training_pid() is not None:
        raise ConfigError(f"{run.path}: is already training", "watch it, or stop it before starting it again")
    run.checkpoint_to_train_from(resume)  # refused here, before a child starts, when there is nothing to do
    command = training_command(run, resume, accept_changes)
    if world_size(config) > 1:
        hardware = detect(run.path)
        check_world(config, hardware, machine)
        command = launch_command(run, config, hardware, machine, _child_flags(resume, accept_changes))
        if echo:
            echo(f"{launch_summary(config, hardware)}; the command is in {launch_script(run, machine)}")
    # Progress bars would fill train.log (events.jsonl has the progress); tcmalloc when installed; the trackers write
    # into the run folder (set before the child starts: trackio reads its folder once, when imported).
    env = training_environment({**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1",
                                **tracking_environment(config.report_to, run.path)})
    with run.log_file.open("ab") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=log, text=True,
                                 start_new_session=True, cwd=run.path, env=env)
    run.record(Launched(pid=child.pid, oom_kills=oom_kills(), command=command))
    return child


def start_training(run: RunDir, resume: bool = False, machine: Machine | None = None) -> subprocess.Popen:
    """Launch the training child detached from this process; returns at once."""
    return _spawn(run, resume, False, subprocess.DEVNULL, machine or Machine())


def train_in_child(run: RunDir, resume: bool = False, accept_changes: bool = False,
                   echo: Callable[[str], None] | None = print, machine: Machine | None = None) -> TrainResult:
    """Train `run` in a child process and wait for it, relaying its progress lines to `echo`.

    Ctrl-C (or SIGTERM) here asks the training processes to checkpoint and stop, and this
    raises TrainingStopped; a second Ctrl-C aborts them without a checkpoint. A child that
    fails raises TrainingFailed with its own message and exit code; one that dies without a
    word (out of memory, killed) gets a `failed` event written here, with the cause and how
    to resume.
    """
    child = _spawn(run, resume, accept_changes, subprocess.PIPE, machine or Machine(), echo)
    previous = {sig: signal.signal(sig, lambda *_: stop_training(run)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if echo:
                echo(line.rstrip("\n"))
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _outcome(run, returncode)


def _outcome(run: RunDir, returncode: int) -> TrainResult:
    """The child's result, or the error that says how it ended."""
    record_death(run, returncode)
    history = run.history()
    last = history.lifecycle
    if returncode == 0 and isinstance(last, Finished) and last.result is not None:
        return last.result
    message, hint = failure_cause(run, returncode, history)
    if isinstance(last, Stopped):
        raise TrainingStopped(message, hint)
    raise TrainingFailed(message, hint, exit_code=returncode if returncode > 0 else 128 - returncode)  # 137: killed


def stop_training(run: RunDir) -> bool:
    """Ask every training process of the run to checkpoint and exit (SIGINT); False when none is running.

    The processes of a distributed run agree on the step to stop at (GracefulStop), so they
    checkpoint together; the launcher above them is left to see them exit.
    """
    signalled = False
    for pid in run.training_processes():
        try:
            os.kill(pid, signal.SIGINT)
            signalled = True
        except ProcessLookupError:
            continue
    return signalled
