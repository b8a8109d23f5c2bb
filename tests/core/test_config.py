"""RunConfig: validation reports every problem, rejects unknown keys, and round-trips YAML."""

from pathlib import Path

import pytest

from tuneforge.core.config import RunConfig
from tuneforge.core.errors import ConfigError


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"data": "x.jsonl", "epochs": -1, "learning_rate": 5, "lora_rank": 8})
    message = info.value.message
    assert "3 problem(s)" in message
    assert "epochs" in message and "learning_rate" in message
    assert "lora_rank: unknown setting" in message
    assert info.value.hint


def test_yaml_round_trip(tmp_path: Path):
    config = RunConfig(data="facts.jsonl", method="qlora", epochs=3, columns={"prompt": "question"})
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    assert RunConfig.from_yaml(path) == config


def test_bad_yaml_names_the_file(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("data: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="config.yaml"):
        RunConfig.from_yaml(path)


def test_early_stopping_needs_eval_data():
    with pytest.raises(ConfigError, match="eval"):
        RunConfig.from_dict({"data": "x.jsonl", "eval_split": 0, "early_stopping_patience": 2})
