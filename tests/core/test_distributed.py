"""Several training processes through accelerate: two CPU processes over gloo train the loss curve
of one process with the same global batch, stop together, and resume."""

from __future__ import annotations

import time

import pytest
import yaml

from tuneforge.core import pipeline
from tuneforge.core.launch import start_training, stop_training
from tuneforge.core.pipeline import create_run
from tuneforge.core.runs import RunDir
from tuneforge.core.train import train_run


def step_losses(run: RunDir) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in run.events() if e["event"] == "step"}


def wait_for(run: RunDir, predicate, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in run.events() if predicate(e)]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no matching event in {timeout} s; log:\n{run.log_file.read_text() if run.log_file.exists() else ''}")


def test_two_cpu_processes_train_the_loss_curve_of_one_and_resume_together(home, tiny_config):
    steps = 8
    one = create_run(tiny_config(batch_size=4, max_steps=steps, save_steps=2), home / "one")
    train_run(one, echo=None)

    two = create_run(tiny_config(batch_size=2, processes=2, max_steps=steps, save_steps=2), home / "two")
    child = start_training(two)
    try:
        wait_for(two, lambda e: e["event"] == "step" and e["step"] >= 3)
        assert stop_training(two)  # both processes agree on the step, checkpoint together, and exit
        child.wait(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
    stopped = two.last_lifecycle_event()
    assert stopped["event"] == "stopped", stopped
    checkpoint = two.last_checkpoint()
    assert checkpoint is not None and sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    ranks = sorted(e.get("rank", 0) for e in two.events() if e["event"] == "started")
    assert ranks == [0, 1]

    result = pipeline.train(two.path, resume=True, echo=None)
    assert result.steps == steps
    # The run directory says how it was launched, so a person can rerun or adapt it.
    settings = yaml.safe_load((two.path / "accelerate.yaml").read_text())
    assert settings["num_processes"] == 2 and settings["distributed_type"] == "MULTI_GPU"
    script = (two.path / "launch.sh").read_text()
    assert "accelerate.commands.launch --config_file" in script and "--resume" in script
    # One events.jsonl: every rank's `started`, rank 0's steps and summary.
    assert not any("rank" in e for e in two.events() if e["event"] not in ("started", "failed"))
    assert two.state() == "trained" and (two.adapter / "adapter_config.json").is_file()

    expected, got = step_losses(one), step_losses(two)
    assert sorted(got) == list(range(1, steps + 1))
    for step in range(1, steps + 1):
        assert got[step] == pytest.approx(expected[step], rel=1e-4), (step, got, expected)
