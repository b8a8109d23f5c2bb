"""Runs that survive: a SIGKILLed training child resumes to the same loss curve, half-written
checkpoints are never picked, and a resume of a changed run explains what changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tuneforge.core.api.runs import create_run
from tuneforge.core.checkpoint_folders import COMPLETE_MARKER, discard_incomplete, prune
from tuneforge.core.diagnosis import failure_cause, record_death
from tuneforge.core.errors import ConfigError
from tuneforge.core.events import CheckpointSaved, Failed, Launched, Started, Step, Warned
from tuneforge.core.runs import RunDir
from tuneforge.core.train import TrainingStopped, train_run
from tuneforge.core.train.resume import FINGERPRINT_FILE

from .events import step_losses, wait_for
from .test_train import InterruptAt

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


def test_a_sigkilled_training_child_is_reported_and_resumes_to_the_same_loss_curve(home, tiny_config):
    config = tiny_config(max_steps=12, save_steps=2, lora_dropout=0.1)  # dropout: the RNG state must resume too
    reference = create_run(config, home / "reference")
    train_run(reference, echo=None)

    run = create_run(config, home / "run")
    # `tuneforge train RUN_DIR` as a person types it: the CLI waits for its training child.
    parent = subprocess.Popen([sys.executable, "-m", "tuneforge.core.cli", "train", str(run.path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(run, lambda e: isinstance(e, CheckpointSaved) and e.step >= 6)
        child_pid = wait_for(run, lambda e: isinstance(e, Started)).pid
        assert child_pid != parent.pid
        os.kill(child_pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        out, err = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    # The parent survived its child and says what happened and what to do, without a traceback.
    assert parent.returncode == 137, err
    assert "Traceback" not in err
    assert "error: the training process was killed by SIGKILL" in err
    assert f"hint: resume from the last checkpoint with `tuneforge train --resume {run.path}`" in err
    assert "step 6/12" in out  # progress lines were relayed while it ran
    failed = run.history().lifecycle
    assert isinstance(failed, Failed) and failed.returncode == -signal.SIGKILL and "SIGKILL" in failed.error
    assert run.state() == "failed"

    # A kill in the middle of a save leaves a folder without its marker: it must not be picked. (The kill may have
    # torn one itself, if the child had reached its next save; else one is made.)
    last = run.last_checkpoint()
    assert last is not None
    last_step = int(last.name.split("-")[1])
    later = [folder for folder in run.checkpoints.glob("checkpoint-*") if int(folder.name.split("-")[1]) > last_step]
    torn = later[0] if later else run.checkpoints / f"checkpoint-{last_step + 2}"
    torn.mkdir(exist_ok=True)
    (torn / "adapter_model.safetensors").write_bytes(b"\0" * 100)
    assert run.last_checkpoint() == last

    resumed = subprocess.run([sys.executable, "-m", "tuneforge.core.cli", "train", "--resume", str(run.path)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"removed {torn.name}" in resumed.stdout and not torn.exists()
    started = [e for e in run.history().events if isinstance(e, Started)]
    assert started[-1].resume_from == str(last)
    expected, got = step_losses(reference), step_losses(run)
    assert sorted(got) == list(range(1, 13))
    resumed_from = int(last.name.split("-")[1])
    for step in range(resumed_from + 1, 13):
        assert got[step] == pytest.approx(expected[step], rel=1e-3, abs=1e-4), step
    assert run.state() == "trained"




def test_resume_of_a_changed_run_says_what_changed(home, tiny_config, facts_file):
    run = create_run(tiny_config(max_steps=6), home / "run")
    with pytest.raises(TrainingStopped):
        train_run(run, echo=None, callbacks=[InterruptAt(2)])
    recorded = json.loads((run.path / FINGERPRINT_FILE).read_text())
    steps_before = len(step_losses(run))
    assert recorded["libraries"]["transformers"] and recorded["data"]["data"]

    original_config = run.config_file.read_text()
    run.config_file.write_text(original_config.replace("learning_rate: 0.005", "learning_rate: 0.001"))
    with pytest.raises(ConfigError) as info:
        train_run(run, resume=True, echo=None)
    assert "setting learning_rate: 0.005 → 0.001" in info.value.message
    assert "--accept-changes" in info.value.hint
    run.config_file.write_text(original_config)

    original_data = facts_file.read_text()
    facts_file.write_text(original_data.replace("teal", "green"))
    with pytest.raises(ConfigError, match=f"data file data \\({facts_file}\\) has changed"):
        train_run(run, resume=True, echo=None)
    facts_file.write_text(original_data)

    tampered = {**recorded, "libraries": {**recorded["libraries"], "transformers": "4.0.0"}}
    (run.path / FINGERPRINT_FILE).write_text(json.dumps(tampered))
    with pytest.raises(ConfigError, match="library transformers: 4.0.0 → "):
        train_run(run, resume=True, echo=None)
    assert len(step_losses(run)) == steps_before, "a refused resume trained anyway"

    # Going on for longer is a change a resume may make; --accept-changes takes the rest, with a warning.
    run.config_file.write_text(original_config.replace("max_steps: 6", "max_steps: 5"))
    lines: list[str] = []
    result = train_run(run, resume=True, echo=lines.append, accept_changes=True)
    assert result.steps == 5
    assert "resuming with setting max_steps: 6 → 5" in lines
    warning = [e for e in run.history().events if isinstance(e, Warned)][-1]
    assert "library transformers: 4.0.0" in warning.error


def make_checkpoint(root, step, complete=True):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text("{}")
    if complete:
        (folder / COMPLETE_MARKER).write_text(str(step))
    return folder


def test_old_checkpoints_go_only_after_a_newer_one_is_complete(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (2, 4, 6):
        make_checkpoint(root, step)
    make_checkpoint(root, 5, complete=False)  # a crash's leftover, older than the newest complete one
    make_checkpoint(root, 8, complete=False)  # a save in progress
    assert prune(root, keep=1, protect=str(root / "checkpoint-2")) == ["checkpoint-4", "checkpoint-5"]
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2", "checkpoint-6", "checkpoint-8"]
    # Until the save in progress is marked, the newest complete checkpoint is what resume uses.
    assert RunDir(tmp_path).last_checkpoint().name == "checkpoint-6"
    assert discard_incomplete(root) == ["checkpoint-8"]
    # Nothing complete yet: nothing is deleted.
    empty = tmp_path / "other"
    make_checkpoint(empty, 2, complete=False)
    assert prune(empty, keep=1) == [] and (empty / "checkpoint-2").is_dir()


def test_a_child_killed_by_the_out_of_memory_killer_is_reported_as_such(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run.record(Launched(pid=dead.pid, oom_kills=3))
    run.record(Step(step=5, max_steps=10, loss=1.0, memory_gb=21.5))
    make_checkpoint(run.checkpoints, 4)
    assert run.state() == "failed"
    monkeypatch.setattr("tuneforge.core.diagnosis.oom_kills", lambda: 4)
    message, hint = failure_cause(run)
    assert message.startswith("the training process was killed by the out-of-memory killer: its last step used 21.5 GB")
    assert "lower batch_size" in hint and f"tuneforge train --resume {run.path}" in hint
    recorded = record_death(run)
    assert recorded.error == message and record_death(run) is None  # written once


def test_a_child_that_fails_is_reported_with_its_own_error(home, tiny_config, facts_file, tmp_path, capsys):
    from tuneforge.core.cli import main
    from tuneforge.core.errors import DataError

    data = tmp_path / "moved.jsonl"
    data.write_text(facts_file.read_text())
    run = create_run(tiny_config(data=str(data)), home / "run")
    data.unlink()  # moved away between creating the run and training it
    assert main(["train", str(run.path)]) == DataError.exit_code
    err = capsys.readouterr().err
    assert err.startswith(f"error: {data}: no such file or folder\nhint: check the path")
    assert run.state() == "failed"
