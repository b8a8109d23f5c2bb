"""A background job, whatever its kind: launched in its own session with a `launched` event, stopped with SIGINT,
its state and why it ended read off its events, and listed by kind."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import pytest

from tuneforge.core.config import RunConfig
from tuneforge.core.errors import ConfigError
from tuneforge.core.events import Launched
from tuneforge.core.jobs import JobDir, launch, refuse_if_running, stop
from tuneforge.core.runs import list_runs, new_run
from tuneforge.core.shrink.job import ShrinkDir, list_shrinks
from tuneforge.core.shrink.plan import ShrinkPlan

STOPS_ON_SIGINT = ("import signal, sys, time\n"
                   "signal.signal(signal.SIGINT, lambda *_: sys.exit(7))\n"
                   "print('working', flush=True)\n"
                   "time.sleep(60)\n")


@dataclass(frozen=True)
class Sleeper(JobDir):
    """A kind of job that only this test has: nothing but the folder, its events and its log."""

    MARKER: ClassVar[str] = "sleeper.json"
    LOG: ClassVar[str] = "sleeper.log"
    WHAT: ClassVar[str] = "the sleeper"

    def resume_hint(self) -> str:
        return "start it again"


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.process
def test_a_job_is_launched_detached_stopped_with_sigint_and_its_state_follows(tmp_path):
    job = Sleeper(tmp_path / "sleeper")
    job.path.mkdir()
    assert job.state() == "created" and job.pid() is None and not stop(job)

    child = launch(job, [sys.executable, "-c", STOPS_ON_SIGINT])
    launched = job.history().lifecycle
    assert isinstance(launched, Launched) and launched.pid == child.pid  # running from the moment it was launched
    assert job.state() == "running" and job.pid() == child.pid
    with pytest.raises(ConfigError, match="the sleeper is still running"):
        refuse_if_running(job)
    wait_for(lambda: "working" in job.log_file.read_text(), "the child's first line in its log")
    assert os.getsid(child.pid) == child.pid  # its own session: closing the terminal or the app does not stop it

    assert stop(job)
    assert child.wait(timeout=30) == 7  # it got SIGINT, as a training child checkpoints on
    # It said nothing before it ended: a job launched whose process is gone failed, and why says where to look.
    assert job.state() == "failed"
    message, hint = job.why_it_ended()
    assert message == f"the sleeper ended without a word (see {job.log_file})" and hint == "start it again"


def test_runs_and_shrinks_are_listed_each_by_their_kind(home, facts_file):
    run = new_run(RunConfig(data=str(facts_file)), home / "runs" / "a-run")
    shrink = ShrinkDir(home / "runs" / "a-shrink")
    shrink.path.mkdir()
    ShrinkPlan(str(run.path), str(run.path), [4, 3], {}).write(shrink.path)
    assert list_runs() == [run] and list_shrinks() == [shrink]
    assert shrink.state() == "created" and run.state() == "created"
