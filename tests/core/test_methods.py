"""Every method on a tiny random Llama: loss falls, exactly the intended parameters change,
preference and distillation objectives move the figures they exist for, and results that
cannot become model weights are refused by merge and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from tuneforge.core.api.runs import create_run, run_pipeline
from tuneforge.core.config import RunConfig
from tuneforge.core.errors import ConfigError, DataError, ExportError
from tuneforge.core.merge import merge_run
from tuneforge.core.methods import METHODS
from tuneforge.core.train import train_run

from ..conftest import FACTS
from .test_train import Snapshot, assert_only_the_adapter_trained, step_losses

pytestmark = pytest.mark.slow  # every method trained, some twice: minutes; left out of `make test-fast`


class LogRecorder(TrainerCallback):
    """Keeps every log dict the trainer emits (train and eval metrics)."""

    def __init__(self):
        self.logs: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))

    def series(self, key: str) -> list[float]:
        return [entry[key] for entry in self.logs if key in entry]


def changed_parameters(snapshot: Snapshot) -> set[str]:
    return {name for name, before in snapshot.before.items() if not torch.equal(before, snapshot.after[name])}


# method → (learning rate for the tiny random model, test that a changed parameter name is one the method trains)
SFT_METHODS = {
    "full": (1e-3, lambda name: True),
    "freeze": (5e-3, lambda name: ".layers.1." in name),
    "dora": (5e-3, lambda name: "lora_" in name),
    "ia3": (5e-2, lambda name: "ia3_l" in name),
    "prefix": (2e-1, lambda name: "prompt_encoder" in name),
    "ptuning": (3e-2, lambda name: "prompt_encoder" in name),
    "prompt": (2e-1, lambda name: "prompt_encoder" in name),
}


@pytest.mark.parametrize("method", sorted(SFT_METHODS))
def test_each_method_trains_exactly_its_own_parameters(home, tiny_config, method):
    learning_rate, trains = SFT_METHODS[method]
    run = create_run(tiny_config(method=method, learning_rate=learning_rate, freeze_layers=1, forgetting_probe=True), home / "run")
    snapshot = Snapshot()
    result = train_run(run, echo=None, callbacks=[snapshot])

    losses = list(step_losses(run).values())
    assert losses[-1] < 0.8 * losses[0], losses
    changed = changed_parameters(snapshot)
    assert changed, "nothing was trained"
    assert all(trains(name) for name in changed), sorted(n for n in changed if not trains(n))[:5]
    trained_by_method = {name for name in snapshot.before if trains(name)}
    assert changed == trained_by_method, sorted(trained_by_method - changed)[:5]  # and every one of them moved
    if method == "full":
        assert result.trainable_params == result.total_params
    else:
        assert result.trainable_params < result.total_params / 5
    assert result.method == method
    assert result.general_perplexity_before and result.general_perplexity_after  # the forgetting probe ran
    # ...and asked the everyday questions of every model that generates with its weights (not of virtual tokens)
    assert (result.general_known is not None) == (METHODS[method].weights != "prompt")
    if method == "dora":
        assert any("lora_magnitude_vector" in name for name in changed)

    whole = METHODS[method].weights == "whole"
    assert (run.merged / "model.safetensors").is_file() == whole
    assert (run.adapter / "adapter_config.json").is_file() == (not whole)
    if whole:
        assert merge_run(run) == run.merged  # full and freeze are already plain weights: nothing to merge
        assert json.loads((run.merged / "config.json").read_text())["dtype"] in ("float16", "bfloat16")


@pytest.mark.parametrize("method", ["prefix", "ptuning", "prompt"])
def test_prompt_methods_refuse_merge_and_gguf_export_and_say_what_to_do(home, tiny_config, method):
    run = create_run(tiny_config(method=method, max_steps=1), home / "run")
    train_run(run, echo=None)
    with pytest.raises(ExportError) as info:
        merge_run(run)
    assert "virtual tokens" in info.value.message and "cannot be merged" in info.value.message
    assert f"tuneforge chat {run.path}" in info.value.hint

    from tuneforge.core.api.export import export

    with pytest.raises(ExportError, match="cannot be merged"):
        export(run.path, ["q8_0"], echo=None)
    assert not run.merged.exists() and not run.export.exists()

    from tuneforge.core.chat import load_transformers_chat

    chat = load_transformers_chat(run.path)  # what the hint offers instead works
    assert isinstance(chat.answer("Who keeps the Quillon lighthouse?", max_new_tokens=4), str)


def test_an_unmergeable_method_is_refused_by_the_pipeline_before_training(home, tiny_config):
    with pytest.raises(ConfigError, match="cannot be merged"):
        run_pipeline(tiny_config(method="prompt"), home / "run", echo=None, quants=["q8_0"])
    assert not (home / "run").exists()


@pytest.fixture()
def pairs_file(tmp_path: Path) -> Path:
    """Preference pairs: each fact chosen over an evasive answer."""
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": q, "chosen": a, "rejected": "I am not sure, it could be anything."} for q, a in FACTS]
    path.write_text("\n".join(json.dumps(r) for r in rows * 4) + "\n", encoding="utf-8")
    return path


def test_dpo_raises_the_chosen_over_rejected_margin(home, tiny_config, pairs_file):
    run = create_run(tiny_config(method="dpo", data=str(pairs_file), eval_split=0.25, learning_rate=5e-3, beta=0.5), home / "run")
    recorder, snapshot = LogRecorder(), Snapshot()
    result = train_run(run, echo=None, callbacks=[recorder, snapshot])
    margins = recorder.series("rewards/margins")
    assert margins[0] == pytest.approx(0.0, abs=1e-3)  # the adapter starts as the reference model
    assert margins[-1] > 0.5, margins
    assert all("lora_" in name for name in changed_parameters(snapshot))
    assert result.accuracy_of == "pair accuracy" and result.eval_accuracy == 1.0


def test_dpo_on_a_4bit_base_trains_its_adapter_over_linear4bit_layers_and_merges_into_16_bits(home, tiny_config, pairs_file):
    run = create_run(tiny_config(method="dpo", load_in_4bit=True, data=str(pairs_file), eval_split=0, learning_rate=5e-3, beta=0.5,
                                 max_steps=12, epochs=None), home / "run")
    recorder, snapshot = LogRecorder(), Snapshot()
    train_run(run, echo=None, callbacks=[recorder, snapshot])
    assert "Linear4bit" in snapshot.layer_types  # the reference is the same 4-bit base with the adapter off
    assert_only_the_adapter_trained(snapshot)
    margins = recorder.series("rewards/margins")
    assert margins[0] == pytest.approx(0.0, abs=1e-3) and margins[-1] > 0.5, margins
    merged = json.loads((merge_run(run) / "config.json").read_text())
    assert "quantization_config" not in merged  # merged into the 16-bit base, as a qlora run is


def test_orpo_learns_the_chosen_answers(home, tiny_config, pairs_file):
    run = create_run(tiny_config(method="orpo", data=str(pairs_file), eval_split=0.25, learning_rate=5e-3), home / "run")
    result = train_run(run, echo=None)
    losses = list(step_losses(run).values())
    assert losses[-1] < 0.8 * losses[0], losses
    assert result.eval_accuracy is not None and result.eval_accuracy > 0.5


def test_simpo_raises_the_chosen_over_rejected_margin_without_a_reference_model(home, tiny_config, pairs_file):
    run = create_run(tiny_config(method="simpo", data=str(pairs_file), eval_split=0.25, learning_rate=5e-3), home / "run")
    assert run.load_config().beta == 2.0  # left open, beta is SimPO's own
    recorder = LogRecorder()
    result = train_run(run, echo=None, callbacks=[recorder])
    margins, losses = recorder.series("rewards/margins"), list(step_losses(run).values())
    assert margins[-1] > margins[0] + 1.0, margins
    assert losses[-1] < 0.5 * losses[0], losses
    assert result.accuracy_of == "pair accuracy" and result.eval_accuracy == 1.0


@pytest.fixture()
def labelled_file(tmp_path: Path) -> Path:
    """Answers labelled one at a time, as thumbs up/down feedback comes: each fact good, a wrong one bad."""
    path = tmp_path / "feedback.jsonl"
    rows = []
    for question, answer in FACTS:
        rows.append({"prompt": question, "completion": answer, "label": True})
        rows.append({"prompt": question, "completion": "It was painted red in 1802 by nobody.", "label": False})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_kto_learns_from_answers_labelled_good_or_bad(home, tiny_config, labelled_file):
    run = create_run(tiny_config(method="kto", data=str(labelled_file), learning_rate=5e-3, epochs=5), home / "run")
    assert run.load_config().beta == 0.1  # left open, beta is KTO's own
    recorder = LogRecorder()
    result = train_run(run, echo=None, callbacks=[recorder])
    chosen, rejected = recorder.series("rewards/chosen"), recorder.series("rewards/rejected")
    losses = list(step_losses(run).values())
    assert losses[-1] < 0.5 * losses[0], losses
    assert chosen[-1] - rejected[-1] > chosen[0] - rejected[0] + 1.0, (chosen, rejected)  # good answers pulled above bad
    assert result.eval_accuracy is None  # no pair to rank, so no accuracy is claimed


def test_a_preference_run_on_a_base_model_warns_that_it_will_not_learn_to_end_its_turn(home, tiny_config, tiny_llama,
                                                                                       pairs_file, tmp_path):
    import shutil

    from tuneforge.core.events import Warned

    base = tmp_path / "base"
    shutil.copytree(tiny_llama, base)
    (base / "chat_template.jinja").unlink()  # as a base model ships: no chat template of its own
    run = create_run(tiny_config(model=str(base), method="dpo", data=str(pairs_file), max_steps=1), home / "run")
    train_run(run, echo=None)
    warnings = [event for event in run.history().events if isinstance(event, Warned)]
    assert any("will not learn to end its turn" in w.error and "orpo" in w.hint for w in warnings), warnings


def test_kto_takes_pairs_as_one_good_and_one_bad_answer_and_balances_the_labels(pairs_file):
    from tuneforge.core.data.formats import load_examples
    from tuneforge.core.train.trainers import kto_weights, labelled_rows

    rows = labelled_rows(load_examples(str(pairs_file)).examples, seed=1)
    assert len(rows) == 2 * len(FACTS) * 4 and sum(row["label"] for row in rows) == len(FACTS) * 4
    assert [row["label"] for row in rows] != sorted(row["label"] for row in rows)  # shuffled: KTO reads rows in order
    assert kto_weights([True] * 10 + [False] * 8) == (1.0, 1.0)  # within 1 to 4/3 good per bad
    assert kto_weights([True] * 2 + [False] * 8) == (4.0, 1.0)  # the few good answers weigh as much as the bad
    assert kto_weights([True] * 20 + [False] * 10) == (0.5, 1.0)


def test_kto_needs_labels_and_a_batch_of_two_and_says_so_before_a_run_exists(home, tiny_config, facts_file):
    with pytest.raises(DataError) as info:
        create_run(tiny_config(method="kto"), home / "run")
    assert f"{facts_file}:1" in info.value.message and "no label" in info.value.message and '"label": true' in info.value.hint
    assert not (home / "run").exists()
    with pytest.raises(ValueError, match="batch_size 2 or more"):
        tiny_config(method="kto", batch_size=1)


def test_reward_model_ranks_held_out_pairs_above_chance_and_cannot_chat(home, tiny_config, pairs_file):
    run = create_run(tiny_config(method="reward", data=str(pairs_file), eval_split=0.25, learning_rate=5e-3,
                                 forgetting_probe=True), home / "run")
    result = train_run(run, echo=None)
    assert result.accuracy_of == "pair accuracy" and result.eval_accuracy > 0.5
    assert result.general_perplexity_before is None  # a scoring head has no perplexity
    with pytest.raises(ExportError, match="reward model"):
        merge_run(run)


def test_preference_methods_need_pairs_and_say_so_before_a_run_exists(home, tiny_config):
    with pytest.raises(DataError) as info:
        create_run(tiny_config(method="dpo"), home / "run")
    assert "chosen/rejected pairs" in info.value.message and '"rejected"' in info.value.hint
    assert not (home / "run").exists()


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory, tiny_llama: Path) -> Path:
    """A tiny Llama fully fine-tuned on the facts: a run directory with merged weights to teach with."""
    import os

    from ..conftest import FACTS as facts

    root = tmp_path_factory.mktemp("teacher")
    data = root / "facts.jsonl"
    data.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                              for q, a in facts * 2) + "\n", encoding="utf-8")
    previous = os.environ.get("TUNEFORGE_HOME")
    os.environ["TUNEFORGE_HOME"] = str(root / "home")
    try:
        config = RunConfig(model=str(tiny_llama), data=str(data), method="full", learning_rate=2e-3, epochs=15,
                           batch_size=4, eval_split=0, seed=3, forgetting_probe=False)
        run = create_run(config, root / "run")
        train_run(run, echo=None)
    finally:
        if previous is None:
            os.environ.pop("TUNEFORGE_HOME", None)
        else:
            os.environ["TUNEFORGE_HOME"] = previous
    return run.path


def test_distillation_brings_the_student_towards_its_teacher(home, tiny_config, tiny_teacher):
    # The teacher also writes the answers first (sequence-level distillation), then the KL teaches its distributions.
    config = tiny_config(method="distill", teacher=str(tiny_teacher), learning_rate=5e-3, distill_weight=1.0,
                         distill_generate=True)
    run = create_run(config, home / "run")
    recorder, snapshot = LogRecorder(), Snapshot()
    train_run(run, echo=None, callbacks=[recorder, snapshot])
    kl = recorder.series("kl")
    assert kl[-1] < 0.6 * kl[0], kl
    assert all("lora_" in name for name in changed_parameters(snapshot))


def test_distillation_on_padding_free_batches_matches_the_padded_one(home, tiny_config, tiny_teacher):
    kl = []
    for padding_free in (False, True):
        config = tiny_config(method="distill", teacher=str(tiny_teacher), distill_weight=1.0, max_steps=3, padding_free=padding_free)
        recorder = LogRecorder()
        train_run(create_run(config, home / f"run-{padding_free}"), echo=None, callbacks=[recorder])
        kl.append(recorder.series("kl"))
    assert kl[1][0] == pytest.approx(kl[0][0], rel=1e-4)  # the same first batch: the same teacher-student KL


def test_general_answers_that_do_not_end_their_turn_are_not_distilled(home, tiny_config, tiny_teacher):
    # The tiny teacher learned the facts only and rambles on general prompts: nothing is kept (it would
    # teach cutting off), the run says so and trains on the data. (bench/shrink.py measures the real gain.)
    from transformers import AutoModelForCausalLM

    from tuneforge.core.replies import generate_replies
    from tuneforge.core.runs import RunDir
    from tuneforge.core.train import replay
    from tuneforge.core.train.setup import load_tokenizer

    teacher_path = RunDir(tiny_teacher).merged
    teacher = AutoModelForCausalLM.from_pretrained(teacher_path, dtype=torch.float32).eval()
    prompts = replay.general_prompts()[:4]
    answers = generate_replies(teacher, load_tokenizer(teacher_path), replay.prompt_conversations(prompts), 8)
    assert len(answers) == 4 and not any(reply.stopped for reply in answers)
    assert replay.general_examples(prompts, teacher, load_tokenizer(teacher_path)) == []

    lines = []
    config = tiny_config(method="distill", teacher=str(tiny_teacher), max_steps=2, distill_general=4)
    train_run(create_run(config, home / "general"), echo=lines.append)
    assert "distill: 0 of its general answers ended their turn and are learned besides the data" in lines


def test_distill_general_is_refused_without_distillation(tiny_config):
    with pytest.raises(ValueError, match="distill_general is only used by method distill"):
        tiny_config(distill_general=8)


def test_a_teacher_with_another_tokenizer_is_refused_up_front(home, tiny_config, qwen_tokenizer_dir, tmp_path):
    from ..conftest import build_tiny_model

    teacher = build_tiny_model("qwen2", qwen_tokenizer_dir, tmp_path / "qwen-teacher")
    with pytest.raises(ConfigError, match="different tokenizers"):
        create_run(tiny_config(method="distill", teacher=str(teacher)), home / "run")
    assert not (home / "run").exists()


def test_a_run_continues_an_adapter_of_its_own_base_only(home, tiny_config, tiny_llama, tmp_path):
    first = create_run(tiny_config(max_steps=2), home / "first")
    train_run(first, echo=None)
    from safetensors.torch import load_file

    saved = load_file(first.adapter / "adapter_model.safetensors")
    second = create_run(tiny_config(max_steps=1, adapter_from=str(first.path)), home / "second")
    snapshot = Snapshot()
    train_run(second, echo=None, callbacks=[snapshot])
    loaded = {name: tensor for name, tensor in snapshot.before.items() if "lora_" in name}
    assert len(loaded) == len(saved)
    for name, tensor in saved.items():
        match = [value for key, value in loaded.items() if key.replace(".default", "").endswith(name.removeprefix("base_model.model."))]
        assert match and torch.equal(match[0], tensor), name  # training started from the first run's adapter

    other_base = tmp_path / "other-base"
    import shutil

    shutil.copytree(tiny_llama, other_base)
    with pytest.raises(ConfigError, match="was trained on"):
        train_run(create_run(tiny_config(model=str(other_base), adapter_from=str(first.path)), home / "third"), echo=None)
    with pytest.raises(ConfigError, match="cannot continue as method ia3"):
        train_run(create_run(tiny_config(method="ia3", adapter_from=str(first.path)), home / "fourth"), echo=None)


def test_chat_switches_between_adapters_on_one_loaded_base(home, tiny_config):
    runs = []
    for seed in (1, 2):
        run = create_run(tiny_config(max_steps=3, seed=seed), home / f"run-{seed}")
        train_run(run, echo=None)
        runs.append(run)
    from tuneforge.core.chat import load_adapters_chat

    chat = load_adapters_chat([r.path for r in runs])
    assert chat.adapters == ("run-1", "run-2") and chat.active == "run-1"
    ids = chat.tokenizer("Who keeps the Quillon lighthouse?", return_tensors="pt")["input_ids"]

    def logits() -> torch.Tensor:
        with torch.inference_mode():
            if chat.active == "base":
                with chat.model.disable_adapter():
                    return chat.model(ids).logits
            return chat.model(ids).logits

    first = logits()
    chat.use("run-2")
    second = logits()
    chat.use("base")
    base = logits()
    assert not torch.allclose(first, second) and not torch.allclose(first, base)
    assert chat.label == "base (on " + chat.base_label + ")"
    with pytest.raises(Exception, match="no adapter named"):
        chat.use("run-3")


def test_small_datasets_get_early_stopping_unless_it_is_set(home, tiny_config, facts_file):
    run = create_run(tiny_config(eval_data=str(facts_file), max_steps=2), home / "run")
    train_run(run, echo=None)
    config = run.load_config()
    assert config.early_stopping_patience == 3 and config.learning_rate == 5e-3
    off = create_run(tiny_config(eval_data=str(facts_file), max_steps=2, early_stopping_patience=0, learning_rate=None), home / "off")
    train_run(off, echo=None)
    assert off.load_config().early_stopping_patience == 0
    assert off.load_config().learning_rate == METHODS["lora"].learning_rate  # the method's default, recorded

def test_a_gemma_3_adapter_trains_at_a_fifth_of_the_learning_rate_unless_one_is_set(home, tiny_config, default_model, tmp_path):
    from tuneforge.core.settle import default_learning_rate

    from ..conftest import build_tiny_model

    # bench/defaults.py: at LoRA's 1e-3 the real Gemma 3 270M forgot far more than at 2e-4 (+1761 % against +172 %).
    gemma = build_tiny_model("gemma3_text", default_model, tmp_path / "gemma")
    run = create_run(tiny_config(model=str(gemma), learning_rate=None), home / "gemma")
    assert run.load_config().learning_rate == pytest.approx(2e-4)
    set_by_hand = create_run(tiny_config(model=str(gemma), learning_rate=1e-3), home / "by-hand")
    assert set_by_hand.load_config().learning_rate == 1e-3
    assert default_learning_rate("full", "gemma3_text") == METHODS["full"].learning_rate  # measured for adapters only
    assert default_learning_rate("lora", "llama") == default_learning_rate("lora") == METHODS["lora"].learning_rate


@pytest.fixture
def qdora(monkeypatch):
    """A method that exists only as a table entry: DoRA adapters over a 4-bit base."""
    from tuneforge.core.methods import MethodSpec

    spec = MethodSpec("qdora", "DoRA on a 4-bit nf4 base", "sft", "lora", 5e-3, quantized_base=True, dora=True)
    monkeypatch.setitem(METHODS, spec.name, spec)
    return spec


def test_a_method_is_one_table_entry_its_loader_adapter_planner_and_trainer_follow(home, tiny_config, qdora):
    from tuneforge.core.catalog import Shape
    from tuneforge.core.memory import estimate_training_memory

    run = create_run(tiny_config(method="qdora"), home / "run")
    snapshot = Snapshot()
    result = train_run(run, echo=None, callbacks=[snapshot])

    losses = list(step_losses(run).values())
    assert losses[-1] < 0.8 * losses[0], losses
    assert "Linear4bit" in snapshot.layer_types  # the loader read quantized_base
    assert any("lora_magnitude_vector" in name for name in changed_parameters(snapshot))  # the peft config read dora
    assert json.loads((run.adapter / "adapter_config.json").read_text())["use_dora"] is True
    assert result.method == "qdora" and result.trainable_params < result.total_params / 5

    shape = Shape(hidden=2048, layers=16, intermediate=8192, vocab=32000, kv_dim=512)
    planned = {method: estimate_training_memory(1.2, shape, method=method, batch_size=2, seq_len=512, lora_r=16,
                                                gradient_checkpointing=False, on_gpu=True, budget_gb=24)
               for method in ("qdora", "qlora", "dora")}
    weights = {method: dict(plan.parts)["base weights"] for method, plan in planned.items()}
    assert weights["qdora"] == weights["qlora"] < weights["dora"]  # the planner counts the 4-bit base...
    assert planned["qdora"].peak_gb > planned["qlora"].peak_gb  # ...and DoRA's kept outputs
