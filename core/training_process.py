"""Start and watch a run's training child: `python -m tuneforge.core.train RUN_DIR`, or, for a run
over several GPUs or processes, `accelerate launch` starting one such child per process.

Training always runs in a child process, in its own session, so that whoever started it
survives whatever ends it (the kernel's out-of-memory killer, a kill -9, a crash in a native
library) and closing the terminal or the TUI does not stop it. The TUI tails events.jsonl;
`tuneforge train` waits in the foreground, relays the progress lines and, when the child dies
without a word, records and reports why. Stopping (the TUI's Stop, Ctrl-C in `tuneforge
train`) sends SIGINT to every training process, on which they checkpoint together at the end
of the current step and exit (`jobs.stop`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable

from .accelerate_setup import Machine, check_world, launch_command, launch_script, launch_summary, world_size
from .diagnosis import failure_cause, record_death
from .errors import TrainingFailed, TrainingStopped
from .events import Finished, Stopped, TrainResult
from .hardware import detect
from .jobs import launch, refuse_if_running, stop
from .runs import RunDir
from .tracking import tracking_environment


def training_command(run: RunDir, resume: bool = False, accept_changes: bool = False) -> list[str]:
    """The command line of a training child (through this Python)."""
    return [sys.executable, "-m", "tuneforge.core.train", *_child_flags(resume, accept_changes), str(run.path)]


def _child_flags(resume: bool, accept_changes: bool) -> list[str]:
    return (["--resume"] if resume else []) + (["--accept-changes"] if accept_changes else [])


def start_training(run: RunDir, resume: bool = False, accept_changes: bool = False, machine: Machine | None = None,
                   echo: Callable[[str], None] | None = None, relay: bool = False) -> subprocess.Popen:
    """Launch the training child detached from this process and return at once (its progress lines on a pipe
    with `relay`, for `wait_for_training` to pass on; else dropped: events.jsonl has them).

    Refused before a child starts when the run is training already or has nothing to do. The `launched`
    event marks the run as running from this moment, before the child has imported torch. A run of
    several processes starts through `accelerate launch`, and `echo` hears how many and where its
    launch command is; `machine` says where this machine sits among several.
    """
    config = run.load_config()  # a ConfigError unless this is a run directory with a readable config.yaml
    refuse_if_running(run)
    run.checkpoint_to_train_from(resume)  # refused here, before a child starts, when there is nothing to do
    machine = machine or Machine()
    command = training_command(run, resume, accept_changes)
    if world_size(config) > 1:
        hardware = detect(run.path)
        check_world(config, hardware, machine)
        command = launch_command(run, config, hardware, machine, _child_flags(resume, accept_changes))
        if echo:
            echo(f"{launch_summary(config, hardware)}; the command is in {launch_script(run, machine)}")
    # The trackers write into the run folder (set before the child starts: trackio reads its folder once, when imported).
    return launch(run, command, tracking_environment(config.report_to, run.path),
                  stdout=subprocess.PIPE if relay else subprocess.DEVNULL)


def wait_for_training(run: RunDir, child: subprocess.Popen, echo: Callable[[str], None] | None = print) -> TrainResult:
    """Wait for a training child (started with `relay`: passing its progress lines to `echo`); its result.

    Ctrl-C (or SIGTERM) here asks the training processes to checkpoint and stop, and this
    raises TrainingStopped; a second Ctrl-C aborts them without a checkpoint. A child that
    fails raises TrainingFailed with its own message and exit code; one that dies without a
    word (out of memory, killed) gets a `failed` event written here, with the cause and how
    to resume.
    """
    previous = {sig: signal.signal(sig, lambda *_: stop(run)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for line in child.stdout or ():  # no pipe: a child started detached, whose progress is in its events
            if echo:
                echo(line.rstrip("\n"))
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _outcome(run, returncode)


def train_in_child(run: RunDir, resume: bool = False, accept_changes: bool = False,
                   echo: Callable[[str], None] | None = print, machine: Machine | None = None) -> TrainResult:
    """Train `run` in a child process and wait for it: `start_training`, then `wait_for_training`."""
    return wait_for_training(run, start_training(run, resume, accept_changes, machine, echo, relay=True), echo)


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
