"""Experiment tracking: a run's loss and tuneforge's own figures in TensorBoard and trackio (offline, in the run
folder), read back with each tracker's own reader; a tracker that cannot log is refused before training."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tuneforge.core.api.runs import create_run, train
from tuneforge.core.errors import ConfigError
from tuneforge.core.evaluation import evaluate_run
from tuneforge.core.runs import list_runs
from tuneforge.core.tracking import tracking_environment

pytestmark = pytest.mark.process  # the first test trains in a child process, as every run does


def test_tensorboard_and_trackio_hold_the_loss_and_tuneforges_figures(home, tiny_config):
    pytest.importorskip("tensorboard")
    if importlib.util.find_spec("trackio") is None:
        pytest.skip("trackio is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = create_run(tiny_config(max_steps=4, report_to=["tensorboard", "trackio"]), home / "run")
    result = train(run.path, echo=None)  # in its child, as every run trains: the trackers write into the run folder
    evaluate_run(run.path, kinds=("tuned",), everyday=False, max_new_tokens=4)  # its scores go beside the curves

    board = EventAccumulator(str(run.path / "tensorboard"))
    board.Reload()
    tags = board.Tags()["scalars"]
    losses = [event.value for event in board.Scalars("train/loss")]
    assert len(losses) == result.steps == 4 and losses[-1] < losses[0]
    # transformers' integration files every trainer log under train/, tuneforge's figures too
    assert {"train/learning_rate", "train/grad_norm", "train/tuneforge/peak_memory_gb", "train/tuneforge/tokens_per_second"} <= set(tags)
    assert board.Scalars("train/tuneforge/peak_memory_gb")[-1].value == pytest.approx(result.peak_memory_gb, rel=1e-3)
    assert board.Scalars("eval_answers/tuned/f1")[-1].step == result.steps

    # trackio keeps a project's runs in a SQLite file under TRACKIO_DIR, here the run folder: read through trackio's
    # own reader in a process of its own (trackio fixes its folder when first imported).
    read = subprocess.run([sys.executable, "-c", "import json, sys; from trackio.sqlite_storage import SQLiteStorage; "
                           "print(json.dumps(SQLiteStorage.get_logs('tuneforge', sys.argv[1]), default=str))", run.name],
                          env={**os.environ, "TRACKIO_DIR": str(run.path / "trackio")}, capture_output=True, text=True, check=True)
    logs = json.loads(read.stdout.strip().splitlines()[-1])
    assert [entry["train/loss"] for entry in logs if "train/loss" in entry] == pytest.approx(losses, rel=1e-4)
    assert any(entry.get("train/tuneforge/peak_memory_gb") == pytest.approx(result.peak_memory_gb, rel=1e-3) for entry in logs)
    assert any("eval_answers/tuned/contains" in entry for entry in logs)


def test_a_tracker_that_cannot_log_is_refused_before_anything_is_written(home, tiny_config, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None if name == "mlflow" else object())
    with pytest.raises(ConfigError) as refused:
        create_run(tiny_config(report_to=["mlflow"]), home / "run")
    assert "mlflow is not installed" in refused.value.message and "tuneforge[tracking]" in refused.value.hint
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(home / "no-netrc"))
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(ConfigError) as refused:
        create_run(tiny_config(report_to=["wandb"]), home / "run")
    assert "not logged in" in refused.value.message and "wandb login" in refused.value.hint
    assert not list_runs() and not (home / "run").exists()
    monkeypatch.setenv("WANDB_MODE", "offline")  # offline W&B needs no login: it writes into the run folder
    assert tracking_environment(["wandb"], home / "run")["WANDB_DIR"] == str(home / "run")
