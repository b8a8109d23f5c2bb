"""Several training processes through accelerate: two CPU processes over gloo train the loss curve
of one process with the same global batch, stop together, and resume."""

from __future__ import annotations

import pytest
import yaml

from tuneforge.core.api import runs as runs_api
from tuneforge.core.api.runs import create_run
from tuneforge.core.events import Failed, Started, Step, Stopped
from tuneforge.core.jobs import stop
from tuneforge.core.train import train_run
from tuneforge.core.training_process import start_training

from .events import step_losses, wait_for

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


def test_two_cpu_processes_train_the_loss_curve_of_one_and_resume_together(home, tiny_config, monkeypatch):
    # fp32 on every CPU: under bf16 autocast, splitting a batch across processes changes the rounding, not the math.
    monkeypatch.setenv("TUNEFORGE_CPU_BF16", "0")
    steps = 8
    one = create_run(tiny_config(batch_size=4, max_steps=steps, save_steps=2), home / "one")
    train_run(one, echo=None)

    two = create_run(tiny_config(batch_size=2, processes=2, max_steps=steps, save_steps=2), home / "two")
    child = start_training(two)
    try:
        wait_for(two, lambda e: isinstance(e, Step) and e.step >= 3)
        assert stop(two)  # both processes agree on the step, checkpoint together, and exit
        child.wait(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
    stopped = two.history().lifecycle
    assert isinstance(stopped, Stopped), stopped
    checkpoint = two.last_checkpoint()
    assert checkpoint is not None and sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    ranks = sorted(e.rank for e in two.history().events if isinstance(e, Started))
    assert ranks == [0, 1]

    result = runs_api.train(two.path, resume=True, echo=None)
    assert result.steps == steps
    # The run directory says how it was launched, so a person can rerun or adapt it.
    settings = yaml.safe_load((two.path / "accelerate.yaml").read_text())
    assert settings["num_processes"] == 2 and settings["distributed_type"] == "MULTI_GPU"
    script = (two.path / "launch.sh").read_text()
    assert "accelerate.commands.launch --config_file" in script and "--resume" in script
    # One events.jsonl: every rank's `started`, rank 0's steps and summary.
    assert not any(e.rank for e in two.history().events if not isinstance(e, (Started, Failed)))
    assert two.state() == "trained" and (two.adapter / "adapter_config.json").is_file()

    expected, got = step_losses(one), step_losses(two)
    assert sorted(got) == list(range(1, steps + 1))
    for step in range(1, steps + 1):
        assert got[step] == pytest.approx(expected[step], rel=1e-4), (step, got, expected)


def two_gpu_machine():
    from dataclasses import replace

    from tuneforge.core.hardware import detect

    return replace(detect(), cuda=True, gpu_name="NVIDIA GeForce RTX 4090", vram_total_gb=24.0, vram_free_gb=23.0,
                   bf16=True, gpu_count=2, compute_capability="8.9")


def test_the_accelerate_config_follows_the_method_and_the_machines():
    from tuneforge.core.accelerate_setup import Machine, accelerate_config
    from tuneforge.core.config import RunConfig

    gpus = two_gpu_machine()
    lora = accelerate_config(RunConfig(data="d", method="lora", processes=2), gpus, Machine())
    assert lora["distributed_type"] == "MULTI_GPU" and lora["num_processes"] == 2 and lora["mixed_precision"] == "bf16"
    assert "fsdp_config" not in lora
    full = accelerate_config(RunConfig(data="d", method="full", processes=2, nodes=2), gpus, Machine(1, "10.0.0.1"))
    assert full["distributed_type"] == "FSDP" and full["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert (full["num_processes"], full["num_machines"], full["machine_rank"], full["main_process_ip"]) == (4, 2, 1, "10.0.0.1")
    # Across machines the port is the agreed one; on one machine a free one, so two runs can train side by side.
    assert full["main_process_port"] == 29500
    assert lora["main_process_port"] != 29500 or accelerate_config(RunConfig(data="d", processes=2), gpus, Machine())["main_process_port"] != 29500


@pytest.mark.parametrize(
    "settings, machine, fragment",
    [
        (dict(processes=4), dict(), "need 4 GPUs; this machine has 2"),
        (dict(processes=2, nodes=2), dict(), "needs the first machine's address"),
        (dict(processes=2, nodes=2), dict(node_rank=2, main_address="10.0.0.1"), "outside 0…1"),
    ],
)
def test_runs_this_machine_cannot_start_are_refused(settings, machine, fragment):
    from tuneforge.core.accelerate_setup import Machine, check_world
    from tuneforge.core.config import RunConfig
    from tuneforge.core.errors import ConfigError

    with pytest.raises(ConfigError, match=fragment):
        check_world(RunConfig(data="d", **settings), two_gpu_machine(), Machine(**machine))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has GPUs")
def test_gpus_on_a_machine_without_them_points_to_processes(home, facts_file, capsys):
    from tuneforge.core.cli import main

    assert main(["train", "--model", "default", "--data", str(facts_file), "--gpus", "2"]) == 2
    err = capsys.readouterr().err
    assert "--gpus 2: this machine has 0 CUDA GPUs" in err and "--processes N" in err
