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
    config = RunConfig(data=str(tmp_path / "facts.jsonl"), method="qlora", epochs=3, columns={"prompt": "question"})
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    assert RunConfig.from_yaml(path) == config
    # A relative path in a config file is relative to the file's folder (tests/core/test_paths.py).
    path.write_text(config.with_updates(data="facts.jsonl").to_yaml(), encoding="utf-8")
    assert RunConfig.from_yaml(path) == config


def test_bad_yaml_names_the_file(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text("data: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="config.yaml"):
        RunConfig.from_yaml(path)


def test_early_stopping_needs_eval_data():
    with pytest.raises(ConfigError, match="eval"):
        RunConfig.from_dict({"data": "x.jsonl", "eval_split": 0, "early_stopping_patience": 2})


def test_a_config_takes_every_method_of_the_table_the_help_lists_them_and_a_typo_is_told_the_choices():
    from tuneforge.core.methods import METHODS, method_help

    assert all(f"{name}: " in method_help() for name in METHODS)
    for name, spec in METHODS.items():
        teacher = {"teacher": "/models/t"} if spec.objective == "distill" else {}
        assert RunConfig.from_dict({"data": "x.jsonl", "method": name, **teacher}).method == name
    with pytest.raises(ConfigError, match="qlora, dora"):
        RunConfig.from_dict({"data": "x.jsonl", "method": "qlroa"})


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"method": "distill"}, "needs a teacher"),
        ({"method": "lora", "teacher": "default"}, "only used by method distill"),
        ({"method": "full", "adapter_from": "runs/x"}, "trains the model's own weights"),
        ({"method": "prefix", "gradient_checkpointing": True}, "key/value cache"),
    ],
)
def test_method_settings_that_cannot_work_together_are_refused(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        RunConfig.from_dict({"data": "x.jsonl", **values})
