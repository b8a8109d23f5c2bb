"""Training on a tiny random Llama: loss falls, only the adapter changes, Ctrl-C checkpoints, resume continues."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from tuneforge.core.api.runs import create_run
from tuneforge.core.errors import ConfigError, ModelError, ResourceError
from tuneforge.core.events import CheckpointSaved, Evaluated, Failed, Started, Step
from tuneforge.core.train import TrainingStopped, train_run

from .events import step_losses


class Snapshot(TrainerCallback):
    """Records every parameter at the start and end of training, what the frozen base computes then
    (the logits with the adapter turned off, on a fixed input), and the optimizer state as loaded."""

    PROBE = torch.tensor([[1, 5, 9, 14, 3, 7, 2, 11]])

    def __init__(self):
        self.before: dict[str, torch.Tensor] = {}
        self.after: dict[str, torch.Tensor] = {}
        self.base_before: torch.Tensor | None = None
        self.base_after: torch.Tensor | None = None
        self.optimizer_state: dict | None = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.layer_types = {type(module).__name__ for module in model.modules()}
        self.before = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.base_before = self.base_logits(model)
        if optimizer is not None:
            self.optimizer_state = {k: {n: t.clone() for n, t in v.items()} for k, v in optimizer.state_dict()["state"].items()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.base_after = self.base_logits(model)

    def base_logits(self, model) -> torch.Tensor | None:
        """The logits with the adapter off; None for methods that train the model's own weights (no adapter)."""
        if not hasattr(model, "disable_adapter"):
            return None
        with torch.no_grad(), model.disable_adapter():
            return model(input_ids=self.PROBE.to(model.device)).logits.float().clone()


def assert_only_the_adapter_trained(snapshot: Snapshot) -> None:
    """Only adapter parameters changed, and the base computes exactly what it computed before training.

    A 4-bit weight is judged by what it computes: bitsandbytes may store it in another layout
    on some CPUs, which is not a change of the model.
    """
    stored_as_4bit = {name for name, p in snapshot.before.items() if p.dtype == torch.uint8}
    changed = {name for name, before in snapshot.before.items()
               if name not in stored_as_4bit and not torch.equal(before, snapshot.after[name])}
    assert changed, "nothing was trained"
    assert all("lora_" in name for name in changed), sorted(changed)[:5]
    assert any("lora_B" in name for name in changed)
    torch.testing.assert_close(snapshot.base_after, snapshot.base_before, rtol=0, atol=1e-6,
                               msg="the frozen base computes something else after training")


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_loss_falls_and_only_adapter_parameters_change(home, tiny_config, method):
    run = create_run(tiny_config(method=method), home / "run")
    snapshot = Snapshot()
    result = train_run(run, echo=None, callbacks=[snapshot])

    losses = list(step_losses(run).values())
    assert losses[-1] < 0.8 * losses[0], losses
    assert_only_the_adapter_trained(snapshot)
    assert result.trainable_params < result.total_params / 2
    assert ("Linear4bit" in snapshot.layer_types) == (method == "qlora")
    assert (run.adapter / "adapter_config.json").is_file() and (run.adapter / "chat_template.jinja").is_file()
    kinds = [e.kind for e in run.history().events]
    assert kinds[0] == "started" and kinds[-1] == "finished" and "checkpoint" in kinds
    step = next(e for e in run.history().events if isinstance(e, Step))
    assert step.tokens_per_second > 0 and step.memory_gb > 0 and step.lr is not None
    assert run.state() == "trained"


def test_the_qlora_base_stays_frozen_where_bitsandbytes_would_repack_it_for_avx512_bf16(home, tiny_config, facts_file, monkeypatch):
    """On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights when they run in eval mode and packs
    them back, lossily, when the model is saved: evaluations and checkpoints interleaved with training
    must leave the base computing what it did. Here bitsandbytes is told this CPU has AVX512-BF16."""
    import bitsandbytes.nn.modules

    monkeypatch.setattr(bitsandbytes.nn.modules, "has_avx512bf16", lambda: True)
    run = create_run(tiny_config(method="qlora", eval_data=str(facts_file), eval_steps=2, save_steps=2, max_steps=6), home / "run")
    snapshot = Snapshot()
    train_run(run, echo=None, callbacks=[snapshot])

    assert [e for e in run.history().events if isinstance(e, Evaluated)] and [e for e in run.history().events if isinstance(e, CheckpointSaved)]
    assert_only_the_adapter_trained(snapshot)


class InterruptAt(TrainerCallback):
    """Sends this process SIGINT at a given step, as Ctrl-C in a terminal would."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_checkpoints_and_resume_continues_with_the_optimizer_state(home, tiny_config):
    config = tiny_config(max_steps=8, save_steps=100)
    reference = create_run(config, home / "reference")
    train_run(reference, echo=None)

    run = create_run(config, home / "run")
    with pytest.raises(TrainingStopped) as info:
        train_run(run, echo=None, callbacks=[InterruptAt(3)])
    assert "resume" in info.value.hint
    checkpoint = run.last_checkpoint()
    assert checkpoint is not None and checkpoint.name == "checkpoint-4"  # the step in flight completes
    assert run.state() == "stopped"

    with pytest.raises(ConfigError, match="already trained"):
        train_run(run, echo=None)  # a second plain start must not silently restart from step 0

    saved_optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)["state"]
    snapshot = Snapshot()
    train_run(run, resume=True, echo=None, callbacks=[snapshot])
    assert snapshot.optimizer_state is not None and set(snapshot.optimizer_state) == set(saved_optimizer)
    for key, tensors in saved_optimizer.items():
        for name, tensor in tensors.items():
            assert torch.equal(snapshot.optimizer_state[key][name], tensor), (key, name)

    resumed_steps = [e.step for e in run.history().steps]
    assert resumed_steps == [1, 2, 3, 4, 5, 6, 7, 8]
    started = [e for e in run.history().events if isinstance(e, Started)]
    assert started[-1].resume_from.endswith("checkpoint-4")
    expected, got = step_losses(reference), step_losses(run)
    for step in (5, 6, 7, 8):
        assert got[step] == pytest.approx(expected[step], rel=1e-3, abs=1e-4)
    assert run.state() == "trained"


def test_resume_without_a_checkpoint_is_explained(home, tiny_config):
    run = create_run(tiny_config(), home / "run")
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        train_run(run, resume=True, echo=None)


def test_resuming_a_finished_run_changes_nothing_until_it_is_asked_to_train_longer(home, tiny_config):
    run = create_run(tiny_config(max_steps=2, save_steps=2), home / "run")
    train_run(run, echo=None)
    events, adapter = run.events_file.read_text(), (run.adapter / "adapter_model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="finished training \\(2 steps\\)") as refused:
        train_run(run, resume=True, echo=None)
    assert "max_steps" in refused.value.hint
    assert run.events_file.read_text() == events and (run.adapter / "adapter_model.safetensors").read_bytes() == adapter
    assert run.state() == "trained"
    run.save_config(run.load_config().with_updates(max_steps=3))  # asked to train longer: it goes on
    assert train_run(run, resume=True, echo=None).steps == 3


class FailAt(TrainerCallback):
    """Raises an exception inside the training loop, as a full GPU or disk would."""

    def __init__(self, error: Exception):
        self.error = error

    def on_step_end(self, args, state, control, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    "error, fragment",
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out of memory"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk"),
    ],
)
def test_out_of_memory_and_full_disk_fail_cleanly_with_a_hint(home, tiny_config, error, fragment):
    run = create_run(tiny_config(max_steps=3), home / "run")
    with pytest.raises(ResourceError) as info:
        train_run(run, echo=None, callbacks=[FailAt(error)])
    assert fragment in info.value.message and "--resume" in info.value.hint
    failed = [e for e in run.history().events if isinstance(e, Failed)]
    assert failed and fragment in failed[-1].error
    assert run.state() == "failed"
    assert "Traceback" in run.log_file.read_text()  # the details stay in train.log for a bug report


class CutFromTheLoss(TrainerCallback):
    """Detaches the output of decoder layer `layer`: the adapters in it and below are cut off from the loss, as an
    adapter on a vision tower is for text, or a graph cut by checkpointing a frozen input."""

    def __init__(self, layer: int):
        self.layer = layer

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.get_base_model().model.layers[self.layer].register_forward_hook(
            lambda module, inputs, output: output.detach() if isinstance(output, torch.Tensor) else (output[0].detach(), *output[1:]))


@pytest.mark.parametrize(("layer", "fragment"), [
    (0, "1 of the 2 trained parts of the model got no gradient at the first step: model.layers.0;"),
    (1, "no trained part of the model takes part in the loss"),  # torch's own error, turned into this one
])
def test_a_run_whose_adapter_gets_no_gradient_stops_at_the_first_step_naming_the_layers(home, tiny_config, layer, fragment):
    run = create_run(tiny_config(max_steps=5), home / "run")
    with pytest.raises(ModelError) as info:
        train_run(run, echo=None, callbacks=[CutFromTheLoss(layer)])
    assert fragment in info.value.message and "lora_targets" in info.value.hint
    assert not [e for e in run.history().events if isinstance(e, Step)]  # stopped before any step was taken
    assert run.state() == "failed" and not (run.adapter / "adapter_config.json").exists()


def test_early_stopping_ends_training_when_eval_loss_stops_improving(home, tiny_config, facts_file):
    # A learning rate far below float32 resolution changes no weight: eval loss cannot improve,
    # so with patience 1 training must end after the second evaluation, not run 20 epochs.
    config = tiny_config(epochs=20, eval_data=str(facts_file), early_stopping_patience=1,
                         learning_rate=1e-30, lr_scheduler="constant", warmup_ratio=0)
    run = create_run(config, home / "run")
    result = train_run(run, echo=None)
    evals = [e.eval_loss for e in run.history().events if isinstance(e, Evaluated)]
    assert result.steps == 4, f"early stopping did not end the run after 2 epochs: {result.steps} steps"
    assert evals[0] == evals[1]


def test_stopping_once_recalled_is_asked_for_and_only_where_answers_can_be_recalled():
    from tuneforge.core.config import DEFAULT_EPOCHS, DEFAULT_PATIENCE, SMALL_DATA_MAX_EPOCHS, RunConfig
    from tuneforge.core.settle import DataFacts, settle_stopping

    def settled(data: DataFacts, **settings: object) -> RunConfig:
        return settle_stopping(RunConfig(data="facts.jsonl", **{"method": "lora", **settings}), data)[0]

    facts, style = DataFacts([64], train_examples=24, has_eval=True), DataFacts([64], train_examples=5000, has_eval=True)
    plain = settled(facts)  # the defaults: 6 epochs, early stopping on eval loss
    assert (plain.epochs, plain.stop_when_recalled, plain.early_stopping_patience) == (DEFAULT_EPOCHS, False, DEFAULT_PATIENCE)
    asked = settled(facts, stop_when_recalled=True)
    assert (asked.epochs, asked.stop_when_recalled, asked.early_stopping_patience) == (SMALL_DATA_MAX_EPOCHS, True, 0)
    assert settled(style, stop_when_recalled=True).stop_when_recalled is False
    assert settled(style).early_stopping_patience == 0
    documents = settled(DataFacts([64], train_examples=24, answers=False), stop_when_recalled=True)
    assert (documents.epochs, documents.stop_when_recalled) == (DEFAULT_EPOCHS, False)  # text has no answer to recall
    assert settled(facts, method="dpo", stop_when_recalled=True).stop_when_recalled is False  # nor have pairs
    assert settled(facts, epochs=3, stop_when_recalled=True).epochs == 3  # a cap the user set
    cannot = settle_stopping(RunConfig(data="facts.jsonl", method="lora", stop_when_recalled=True), facts, can_check=False)[0]
    assert cannot.stop_when_recalled is False


def test_training_stops_once_every_answer_is_recalled_and_greedy_answers_then_repeat_them(home, tiny_config):
    from tuneforge.core.chat import load_transformers_chat
    from tuneforge.core.events import Recalled

    from ..conftest import FACTS

    run = create_run(tiny_config(method="full", epochs=60, stop_when_recalled=True, learning_rate=3e-3), home / "run")
    result = train_run(run, echo=None)
    checks = [e for e in run.history().events if isinstance(e, Recalled)]
    assert checks and checks[-1].recalled == checks[-1].checked == 2 * len(FACTS)  # the file holds each fact twice
    assert all(check.recalled < check.checked for check in checks[:-1])  # it stopped at the first full recall
    assert result.steps == 2 * len(checks) < 2 * 60  # two steps an epoch; well before the cap
    chat = load_transformers_chat(run.path)
    try:
        for question, answer in FACTS:  # the teacher-forced check is exactly greedy decoding's condition
            assert chat.reply([{"role": "user", "content": question}], 48).text == answer
    finally:
        chat.close()


@pytest.mark.slow  # two 20-step QLoRA runs in bf16, about a minute
def test_qlora_keeps_what_is_not_4bit_in_the_compute_dtype_and_learns_as_with_the_fp32_upcast(home, tiny_config, tiny_llama,
                                                                                             monkeypatch):
    """No k-bit upcast: under bf16 the residual stream enters the first layer in bf16 (peft's preparation made it
    fp32), only the adapter is fp32, and 20 steps learn as they did with the upcast."""
    from dataclasses import replace

    from peft import prepare_model_for_kbit_training

    from tuneforge.core.config import RunConfig
    from tuneforge.core.hardware import detect
    from tuneforge.core.models import resolve_model
    from tuneforge.core.train import runner, setup

    bf16 = replace(detect(home), cpu_bf16=True)  # on a CPU without bf16 units too: tiny, so slow is fine
    model_ref = resolve_model(str(tiny_llama))
    model = setup.make_trainable(setup.load_base_model(model_ref, "qlora", bf16),
                                 RunConfig(model=str(tiny_llama), data="x.jsonl", method="qlora"), model_ref, True)
    entering = []
    layers = model.get_base_model().model.layers
    layers[0].register_forward_pre_hook(lambda module, args, kwargs: entering.append(args[0].dtype if args else
                                                                                     kwargs["hidden_states"].dtype),
                                        with_kwargs=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(input_ids=Snapshot.PROBE, labels=Snapshot.PROBE).loss.backward()
    assert entering == [torch.bfloat16]
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all(p.dtype == torch.float32 and p.grad is not None for p in trained.values())

    def with_upcast(base, *args):  # what QLoRA did before: peft's k-bit preparation, then the adapter
        return setup.make_trainable(prepare_model_for_kbit_training(base, use_gradient_checkpointing=False), *args)

    monkeypatch.setattr(runner, "detect", lambda path: bf16)
    losses = {}
    for upcast in (False, True):
        if upcast:
            monkeypatch.setattr(runner, "make_trainable", with_upcast)
        run = create_run(tiny_config(method="qlora", max_steps=20, epochs=None), home / f"upcast-{upcast}")
        result = train_run(run, echo=None)
        losses[upcast] = list(step_losses(run).values())
    # 4-bit weights are counted as weights, not as the bytes that pack two of them
    from transformers import AutoModelForCausalLM

    assert result.total_params == AutoModelForCausalLM.from_pretrained(tiny_llama).num_parameters() + result.trainable_params
    assert losses[False][-1] < 0.6 * losses[False][0]  # it learns (measured: 12.00 → 6.44 and 12.01 → 6.44)
    assert losses[False] == pytest.approx(losses[True], rel=0.02), losses


def test_an_adapter_on_a_multimodal_checkpoint_leaves_its_vision_tower_out(tiny_config):
    import peft
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from tuneforge.core.models import ResolvedModel
    from tuneforge.core.train.setup import peft_config

    # Gemma 3 4B+ as published, tiny: a SigLIP vision tower whose attention layers carry the names LoRA targets.
    config = Gemma3Config(text_config={"vocab_size": 300, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                       "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16},
                          vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                                         "image_size": 32, "patch_size": 16}, mm_tokens_per_image=4)
    base = Gemma3ForConditionalGeneration(config)
    assert any("vision_tower" in name and name.endswith("q_proj") for name, _ in base.named_modules())
    adapted = peft.get_peft_model(base, peft_config(tiny_config(), ResolvedModel("gemma-3-4b", Path("."), "gemma3"), base))
    trained = [name for name, parameter in adapted.named_parameters() if parameter.requires_grad]
    assert any("language_model" in name and "q_proj" in name for name in trained)
    assert not [name for name in trained if "vision" in name or "multi_modal" in name]
