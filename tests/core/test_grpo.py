"""GRPO: the rewards people write, prompts as data, learning towards what is rewarded, and failures that name their cause."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import get_args

import pytest

from tuneforge.core.config import RunConfig
from tuneforge.core.errors import ConfigError, DataError, RewardError
from tuneforge.core.rewards import (
    KINDS,
    REFERENCE_KINDS,
    Completions,
    Reward,
    RewardKind,
    checked_scores,
    last_number,
    score_function,
)
from tuneforge.core.train.grpo import ReleaseJudges

from ..conftest import FACTS
from .test_train import Snapshot


def scores(written: str, answers: list[str], references: list[str | None] | None = None,
           ended: list[bool] | None = None) -> list[float | None]:
    reward = Reward.parse(written)
    batch = Completions(prompts=["q"] * len(answers), answers=answers, references=references or [None] * len(answers),
                        ended=ended or [True] * len(answers), sources=[f"data.jsonl:{i + 1}" for i in range(len(answers))])
    return checked_scores(reward, score_function(reward), batch)


def test_each_built_in_reward_scores_what_it_says(tmp_path):
    assert scores("exact", ["Teal.", "teal", "It is teal"], ["teal"] * 3) == [1.0, 1.0, 0.0]
    assert scores("contains", ["The door is teal.", "It is blue."], ["teal", "teal"]) == [1.0, 0.0]
    assert scores("contains", ["anything"], [None]) == [None]  # a prompt alone: the reference rewards score nothing
    assert scores("numeric", ["So the answer is 1,911.", "about 1912", "no number"], ["It was built in 1911"] * 3) == [1.0, 0.0, 0.0]
    assert scores("numeric:0.5", ["3.4", "3.6"], ["#### 3"] * 2) == [1.0, 0.0]
    assert scores(r"regex:^\d+$", ["42", "42 metres"]) == [1.0, 0.0]
    assert scores("length:2-4", ["one", "one two three", "one two three four five"]) == [0.0, 1.0, 0.0]
    assert scores("ends_turn", ["a", "b"], ended=[True, False]) == [1.0, 0.0]
    schema = tmp_path / "answer.schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]}))
    replies = ['{"year": 1911}', '```json\n{"year": 1911}\n```', '{"year": "1911"}', "1911"]
    assert scores(f"json:{schema}", replies) == [1.0, 1.0, 0.0, 0.0]
    assert scores("json", replies) == [1.0, 1.0, 1.0, 1.0]  # any JSON value: a bare number is one
    assert last_number("-2.5 and then 1,024.75") == 1024.75
    assert set(KINDS) == set(get_args(RewardKind)) and set(REFERENCE_KINDS) <= set(KINDS)  # the app lists every kind


def test_a_reward_is_written_as_typed_with_its_weight_and_a_wrong_one_says_how_to_write_it():
    reward = Reward.parse("0.5*length:5-60")
    assert (reward.kind, reward.argument, reward.weight, reward.written()) == ("length", "5-60", 0.5, "0.5*length:5-60")
    assert Reward.parse("regex:a*b").argument == "a*b"  # a star inside the argument is not a weight
    for written, problem in [("length:60-5", "MIN-MAX"), ("regex:(", "not a regular expression"), ("contain", "kind"),
                             ("code", "needs an argument"), ("numeric:-1", "≥ 0"), ("exact:teal", "takes no argument")]:
        with pytest.raises(ConfigError, match="reward") as refused:
            Reward.parse(written)
        assert problem in refused.value.message and "[WEIGHT*]KIND" in refused.value.hint
    config = RunConfig(data="d.jsonl", method="grpo", rewards=["2*contains", {"kind": "ends_turn"}])
    assert [r.written() for r in config.rewards] == ["2*contains", "ends_turn"]
    with pytest.raises(ConfigError, match="used by method grpo"):
        RunConfig.from_dict({"data": "d.jsonl", "method": "lora", "rewards": ["contains"]})
    with pytest.raises(ConfigError, match="multiple of num_generations"):
        RunConfig.from_dict({"data": "d.jsonl", "method": "grpo", "batch_size": 6, "num_generations": 4})


def test_a_code_reward_runs_only_with_allow_code_and_its_file_is_kept_absolute(home, tiny_llama, tmp_path, monkeypatch):
    from tuneforge.core.api.runs import create_run

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q, _ in FACTS), encoding="utf-8")
    (tmp_path / "mine.py").write_text("def reward(completions, **kwargs):\n    return [float('teal' in c) for c in completions]\n")
    monkeypatch.chdir(tmp_path)
    config = RunConfig(model=str(tiny_llama), data=str(prompts), method="grpo", rewards=["code:mine.py"], batch_size=4)
    with pytest.raises(ConfigError, match=r"mine\.py runs the Python code in that file") as refused:
        create_run(config, tmp_path / "refused")
    assert "--allow-code" in refused.value.hint and not (tmp_path / "refused").exists()
    run = create_run(config.with_updates(allow_code=True), tmp_path / "run")
    assert run.load_config().rewards[0].argument == str(tmp_path / "mine.py")  # the child runs in another folder


def test_prompts_alone_train_grpo_and_are_refused_with_the_way_out_for_methods_that_learn_answers(home, tiny_llama, tmp_path):
    from tuneforge.core.api.runs import create_run

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q, _ in FACTS), encoding="utf-8")
    with pytest.raises(DataError, match="prompts without answers") as refused:
        create_run(RunConfig(model=str(tiny_llama), data=str(prompts), method="lora"), tmp_path / "sft")
    assert "--method grpo" in refused.value.hint
    text = tmp_path / "notes.txt"
    text.write_text("Plain running text.\n" * 20, encoding="utf-8")
    with pytest.raises(DataError, match="samples answers to prompts"):
        create_run(RunConfig(model=str(tiny_llama), data=str(text), method="grpo", batch_size=4), tmp_path / "text")


@pytest.fixture(scope="session")
def yes_or_no(tmp_path_factory, tiny_llama: Path, shared_models: Path) -> Path:
    """A tiny Llama trained to answer every question "Yes." or "No." as often: sampled, about half its answers hold
    "yes", so a reward for that word has something to choose between."""
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.train.runner import train_run

    from ..conftest import session_home

    root = tmp_path_factory.mktemp("yes-or-no")
    data = root / "yes-no.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
                            for q, _ in FACTS for a in ("Yes.", "No.")), encoding="utf-8")
    with session_home(tmp_path_factory, shared_models, "yes-no-home"):
        run = create_run(RunConfig(model=str(tiny_llama), data=str(data), method="full", learning_rate=2e-3, epochs=40,
                                   batch_size=4, eval_split=0, seed=3, forgetting_probe=False), root / "run")
        train_run(run, echo=None)
    return run.path / "merged"


@pytest.mark.standard  # trains a tiny model to say yes or no first: tens of seconds
@pytest.mark.parametrize("load_in_4bit", [False, True], ids=["lora", "4-bit base"])
def test_grpo_learns_to_give_the_answer_its_reward_asks_for(home, yes_or_no, tmp_path, load_in_4bit):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.train.runner import train_run

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q, _ in FACTS), encoding="utf-8")
    config = RunConfig(model=str(yes_or_no), data=str(prompts), method="grpo", rewards=[r"regex:(?i)\byes\b"], max_steps=20,
                       batch_size=8, num_generations=4, max_completion_length=8, learning_rate=1e-2, lora_r=8, lora_alpha=16,
                       sample_temperature=1.0, seed=1, forgetting_probe=False, load_in_4bit=load_in_4bit)  # as trained: half its answers say yes
    run = create_run(config, tmp_path / "run")
    snapshot = Snapshot()
    result = train_run(run, echo=None, callbacks=[snapshot])
    assert ("Linear4bit" in snapshot.layer_types) == load_in_4bit

    history = run.history()
    rewards = [step.reward for step in history.steps]
    assert result.steps == 20 and len(rewards) == 20
    assert sum(rewards[-5:]) / 5 >= 0.8 > sum(rewards[:5]) / 5 + 0.2, rewards  # measured: 0.45 → 1.0
    assert set(history.steps[-1].rewards) == {r"regex:(?i)\byes\b"} and history.steps[-1].kl is not None
    first, last = history.samples[0], history.samples[-1]  # sampled answers with their rewards, for the app
    assert (first.step, last.step) == (1, 20) and len(last.answers) == len(last.rewards[r"regex:(?i)\byes\b"])
    assert all("yes" in answer.lower() for answer in last.answers)
    from tuneforge.core.api.runs import merge

    assert (merge(run.path) / "config.json").is_file()  # a LoRA adapter: it merges (and exports) as any LoRA run


@pytest.mark.standard  # trains a tiny model to say yes or no first: tens of seconds
def test_a_reward_that_raises_stops_the_run_with_the_reward_and_the_record(home, yes_or_no, tmp_path):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.train.runner import train_run

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q, "completion": a}) + "\n" for q, a in FACTS), encoding="utf-8")
    (tmp_path / "strict.py").write_text(
        "def reward(completions, reference, **kwargs):\n"
        "    return [1 / (0 if '1911' in ref else 1) for ref in reference]\n")
    config = RunConfig(model=str(yes_or_no), data=str(prompts), method="grpo", rewards=[f"code:{tmp_path / 'strict.py'}"],
                       allow_code=True, epochs=1, batch_size=4, max_completion_length=8, seed=1, forgetting_probe=False)
    with pytest.raises(RewardError) as failed:
        train_run(create_run(config, tmp_path / "run"), echo=None)
    assert f"reward code:{tmp_path / 'strict.py'} raised ZeroDivisionError on {prompts}:3" in failed.value.message


def test_a_reward_that_returns_no_number_per_answer_is_named():
    reward = Reward.parse("exact")
    batch = Completions(["q"], ["a"], ["a"], [True], ["d.jsonl:1"])
    with pytest.raises(RewardError, match=r"reward exact returned 'yes' on d.jsonl:1"):
        checked_scores(reward, lambda _: ["yes"], batch)
    with pytest.raises(RewardError, match="returned list for 1 answers"):
        checked_scores(reward, lambda _: [1.0, 0.0], batch)
    assert checked_scores(reward, lambda _: [math.pi], batch) == [math.pi]


def test_a_judge_reward_asks_the_judge_about_each_answer_and_the_plan_says_what_it_costs():
    from tuneforge.core.hardware import Hardware
    from tuneforge.core.settle import DataFacts, settle_run

    from .servers import ScriptedServer

    def verdict(request: dict) -> str:
        candidate = request["messages"][-1]["content"].split("Candidate answer:")[-1]
        return json.dumps({"correct": "teal" in candidate, "reason": "the colour"})

    server = ScriptedServer(verdict)
    try:
        judged = scores(f"judge:{server.url}", ["It is teal.", "It is red.", "Anything"], ["The door is teal.", "The door is teal.", None])
        judge = Reward.parse(f"judge:{server.url}")
        score = score_function(judge)
        batch = Completions(prompts=["q"], answers=["teal"], references=["teal"], ended=[True], sources=["data.jsonl:1"])
        assert checked_scores(judge, score, batch) == [1.0]
        ReleaseJudges([score]).on_train_end(None, None, None)  # as training ends: the judge's connection is closed
        with pytest.raises(RewardError, match="closed"):
            checked_scores(judge, score, batch)
    finally:
        server.stop()
    assert judged == [1.0, 0.0, None] and len(server.requests) == 3  # a prompt without a reference is not sent

    config = RunConfig(data="d.jsonl", method="grpo", rewards=["contains", f"0.5*judge:{server.url}"], batch_size=8)
    cpu = Hardware(False, None, 0, 0, False, 16, 12, 100, cpu_cores=2)
    notes = settle_run(config, cpu, DataFacts([40] * 16, 0.5, 16, False), None).notes
    assert any("4 answers sampled per prompt" in note and "8 requests a step" in note for note in notes), notes


@pytest.mark.process  # a training child, so that the peak it records is its own
def test_a_grpo_run_peaks_within_a_fifth_of_its_memory_plan(home, tiny_llama, tmp_path):
    import subprocess
    import sys

    from tuneforge.core.api.runs import create_run

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": q}) + "\n" for q, _ in FACTS * 2), encoding="utf-8")
    # A random model never ends its turn: every answer takes the whole budget the plan counts.
    config = RunConfig(model=str(tiny_llama), data=str(prompts), method="grpo", rewards=["length:1-3"], max_steps=4, batch_size=8,
                       num_generations=4, max_completion_length=64, forgetting_probe=False, save_steps=1000, eval_split=0)
    run = create_run(config, tmp_path / "run")
    subprocess.run([sys.executable, "-m", "tuneforge.core.train", str(run.path)], check=True, capture_output=True)
    history = run.history()
    planned, measured = history.plan.peak_gb, history.finished.result.peak_memory_gb
    assert abs(measured / planned - 1) <= 0.2, (planned, measured, history.plan.parts)  # measured 1.15-1.21; planned 1.19 (tcmalloc), 1.31 (glibc)
