"""`tuneforge compare`, the overfitting warning, and the memory estimate's method terms."""

from __future__ import annotations

import pytest

from tuneforge.core.cli import main
from tuneforge.core.compare import compared_run, format_table
from tuneforge.core.config import RunConfig
from tuneforge.core.errors import ConfigError
from tuneforge.core.events import Finished, TrainResult, Warned
from tuneforge.core.runs import new_run


def finished_run(home, name: str, method: str, **figures):
    run = new_run(RunConfig(data="x.jsonl", method=method), home / name)
    event = dict(steps=30, final_loss=0.5, eval_loss=0.7, runtime_s=12.0, tokens_per_second=100.0, trainable_params=4_900_000,
                 total_params=134_500_000, peak_memory_gb=2.5, method=method, eval_accuracy=0.8, accuracy_of="token accuracy",
                 general_perplexity_before=10.0, general_perplexity_after=11.0, general_known=60, general_kept=55)
    run.record(Finished(result=TrainResult(**{**event, **figures})))
    return run


def test_compare_prints_one_row_per_run_with_its_trade_offs(home, capsys):
    lora = finished_run(home, "lora-run", "lora")
    dpo = finished_run(home, "dpo-run", "dpo", accuracy_of="pair accuracy", eval_accuracy=1.0, tokens_per_second=0.0,
                       general_perplexity_before=None, general_perplexity_after=None)
    assert main(["compare", str(lora.path), str(dpo.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run", "method", "trainable"]
    lora_row = next(line for line in lines if line.startswith("lora-run"))
    assert "4.9M (3.64%)" in lora_row and "+10.0%" in lora_row and "80.0% tokens" in lora_row and "55/60" in lora_row
    dpo_row = next(line for line in lines if line.startswith("dpo-run"))
    assert "100.0% pairs" in dpo_row and " - " in dpo_row  # no token count, no forgetting figure
    assert compared_run(lora.path).forgetting == pytest.approx(0.1)


def test_compare_refuses_a_run_that_has_not_finished(home):
    run = new_run(RunConfig(data="x.jsonl"), home / "unfinished")
    with pytest.raises(ConfigError, match="has not finished"):
        compared_run(run.path)
    header, rule, blank, *legend = format_table([]).splitlines()
    assert header.split()[:2] == ["run", "method"] and set(rule.replace(" ", "")) == {"-"}
    assert blank == "" and [line.split(":")[0] for line in legend] == ["everyday kept", "forgetting", "eval accuracy"]  # no row


def test_overfitting_is_warned_once_when_eval_rises_while_train_falls(home):
    from tuneforge.core.train.guards import OverfitWatch

    run = new_run(RunConfig(data="x.jsonl"), home / "run")
    watch = OverfitWatch(run, echo=None)

    class State:
        global_step = 0

    for train_loss, eval_loss in ((2.0, 1.5), (1.5, 1.2), (1.0, 1.3), (0.5, 1.6)):
        State.global_step += 4
        watch.on_log(None, State, None, logs={"loss": train_loss})
        watch.on_log(None, State, None, logs={"eval_loss": eval_loss})
    warnings = [e for e in run.history().events if isinstance(e, Warned)]
    assert len(warnings) == 1 and warnings[0].step == 12
    assert "1.200 → 1.300" in warnings[0].error and "early_stopping_patience" in warnings[0].hint
