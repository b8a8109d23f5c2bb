"""`tuneforge train RUN_DIR` and its training child, stopped with Ctrl-C in the CLI's terminal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from tuneforge.core.allocator import tcmalloc_library
from tuneforge.core.api.runs import create_run
from tuneforge.core.events import Planned, Step, Stopped

from .events import wait_for

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


def test_ctrl_c_checkpoints_the_child_and_the_cli_resumes_it(home, tiny_config):
    run = create_run(tiny_config(max_steps=400, save_steps=1000), home / "run")
    # A terminal of its own for the CLI; its training child has its own session, and the CLI passes Ctrl-C on.
    parent = subprocess.Popen([sys.executable, "-m", "tuneforge.core.cli", "train", str(run.path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(run, lambda e: isinstance(e, Step))
        # The child runs on tcmalloc where it is installed, and planned for it.
        assert wait_for(run, lambda e: isinstance(e, Planned)).allocator == ("tcmalloc" if tcmalloc_library() else "glibc")
        os.killpg(parent.pid, signal.SIGINT)
        out, err = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert parent.returncode == 130, err
    assert "step " in out and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("hint: continue with `tuneforge train --resume")
    stopped = wait_for(run, lambda e: isinstance(e, Stopped))
    checkpoint = run.last_checkpoint()
    assert checkpoint is not None and "checkpoint saved" in stopped.error
    stopped_at = int(checkpoint.name.split("-")[1])
    assert stopped_at < 400
    # Every line the person reads is tuneforge's: no library warning (bitsandbytes warns as it is imported) reads as an error.
    lines = err.splitlines() + run.log_file.read_text().splitlines()
    assert not [line for line in lines if not re.match(r"(\d\d:\d\d:\d\d |(error|stopped|hint|warning): )", line)]

    # Resume to the end (fewer steps, so the test stays short).
    config = run.config_file.read_text().replace("max_steps: 400", f"max_steps: {stopped_at + 2}")
    run.config_file.write_text(config)
    resumed = subprocess.run([sys.executable, "-m", "tuneforge.core.cli", "train", "--resume", str(run.path)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line)["step"] for line in run.events_file.read_text().splitlines() if '"event": "step"' in line]
    assert steps[-2:] == [stopped_at + 1, stopped_at + 2]
    assert run.state() == "trained"
