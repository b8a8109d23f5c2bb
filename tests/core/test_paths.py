"""A path the user types is the user's path: relative --data, --model and --config work from the folder they
were typed in, paths inside a config file are relative to that file, and a run resumes from anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tuneforge.core.config import RunConfig, absolute_paths

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


def tuneforge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`tuneforge …` in a fresh process started in `cwd`, as a person in that folder would type it."""
    return subprocess.run([sys.executable, "-m", "tuneforge.core.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHONPATH": ""})


@pytest.fixture()
def workspace(tmp_path: Path, tiny_llama: Path, facts_file: Path) -> Path:
    """A person's project folder: their data, a model folder, and a config file in a subfolder."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(facts_file, folder / "facts.jsonl")
    shutil.copytree(tiny_llama, folder / "model")
    (folder / "conf").mkdir()
    (folder / "conf" / "settings.yaml").write_text(yaml.safe_dump({
        "eval_data": "../facts.jsonl",  # relative to the config file's folder
        "max_steps": 2, "save_steps": 2, "eval_split": 0, "batch_size": 4, "learning_rate": 5e-3, "lora_r": 8,
        "lora_alpha": 16, "seed": 1, "forgetting_probe": False,
    }))
    (tmp_path / "elsewhere").mkdir()
    return folder


def test_relative_paths_are_resolved_where_they_were_typed(tmp_path):
    (tmp_path / "data.jsonl").write_text("")
    (tmp_path / "model").mkdir()
    values = absolute_paths({"data": "data.jsonl", "model": "model", "eval_data": "missing.jsonl", "teacher": "qwen2.5-0.5b",
                             "adapter_from": "./runs/one", "epochs": 2}, tmp_path)
    assert values == {"data": str(tmp_path / "data.jsonl"), "model": str(tmp_path / "model"),
                      "eval_data": str(tmp_path / "missing.jsonl"),  # a file name, so a typo is reported with its full path
                      "teacher": "qwen2.5-0.5b", "adapter_from": str(tmp_path / "runs" / "one"), "epochs": 2}
    assert absolute_paths({"model": "default", "data": "-"}, tmp_path) == {"model": "default", "data": "-"}
    assert absolute_paths({"model": "Qwen/Qwen2.5-1.5B-Instruct"}, tmp_path)["model"] == "Qwen/Qwen2.5-1.5B-Instruct"
    # A run's own config.yaml reads relative paths against the run directory.
    (tmp_path / "config.yaml").write_text("data: data.jsonl\nmodel: model\n")
    loaded = RunConfig.from_yaml(tmp_path / "config.yaml")
    assert (loaded.data, loaded.model) == (str(tmp_path / "data.jsonl"), str(tmp_path / "model"))


def test_train_with_relative_paths_then_resume_from_another_folder(home, workspace):
    trained = tuneforge("train", "--model", "model", "--data", "facts.jsonl", "--config", "conf/settings.yaml",
                        "--run-dir", "../runs/first", cwd=workspace)
    assert trained.returncode == 0, trained.stderr
    run_dir = workspace.parent / "runs" / "first"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"] == str(workspace / "facts.jsonl") and config["eval_data"] == str(workspace / "facts.jsonl")
    assert config["model"] == str(workspace / "model")
    assert any(json.loads(line)["event"] == "finished" for line in (run_dir / "events.jsonl").read_text().splitlines())

    # Two more steps, resumed by a relative path from a third folder.
    config["max_steps"] = 4
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    resumed = tuneforge("train", "--resume", "../runs/first", cwd=workspace.parent / "elsewhere")
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in steps if e["event"] == "step"][-2:] == [3, 4]


def test_a_mistyped_relative_path_leaves_no_run_and_names_the_full_path(home, workspace):
    failed = tuneforge("train", "--model", "model", "--data", "fatcs.jsonl", cwd=workspace)
    assert failed.returncode == 3 and f"error: {workspace / 'fatcs.jsonl'}: no such file" in failed.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_run_with_relative_paths_trains_merges_and_verifies_the_export(home, workspace):
    finished = tuneforge("run", "--model", "model", "--data", "facts.jsonl", "--config", "conf/settings.yaml",
                         "--run-dir", "../runs/whole", "--quant", "f16", cwd=workspace)
    # A random tiny model may not end a chat turn within the check's limit (exit 6); every other check must pass.
    assert finished.returncode in (0, 6), finished.stderr
    report = json.loads((workspace.parent / "runs" / "whole" / "export" / "export-report.json").read_text())
    (entry,) = report["files"]
    assert Path(entry["file"]) == workspace.parent / "runs" / "whole" / "export" / "whole-f16.gguf"
    checks = {check["name"]: check["passed"] for check in entry["checks"]}
    assert checks["loads"] and checks["tokenizer"] and checks["logits"] and checks["perplexity"]
