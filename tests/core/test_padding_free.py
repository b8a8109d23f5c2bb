"""Padding-free batches: a micro-batch's examples end to end in one row give the loss and gradients of the padded batch."""

from __future__ import annotations

import pytest
import torch

EXAMPLE_LENGTHS = (30, 11, 23, 5)


def tiny_model(family: str, attention: str):
    """A random 2-layer model of `family` with LoRA (non-zero B, so every adapter weight gets a gradient); Gemma 3's
    sliding window is shorter than the longest example, so a window that leaked across examples would show."""
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    common = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, pad_token_id=0, attn_implementation=attention)
    config_class, model_class, extra = {
        "llama": (LlamaConfig, LlamaForCausalLM, {}),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM, {"head_dim": 16}),
        "gemma3": (Gemma3TextConfig, Gemma3ForCausalLM, {"head_dim": 16, "sliding_window": 8, "query_pre_attn_scalar": 16}),
    }[family]
    torch.manual_seed(0)
    model = model_class(config_class(**common, **extra))
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))


def examples() -> list[dict[str, list[int]]]:
    """Chat-like examples of different lengths: a prompt (not trained) then an answer."""
    generator = torch.Generator().manual_seed(1)
    out = []
    for length in EXAMPLE_LENGTHS:
        ids = torch.randint(3, 300, (length,), generator=generator).tolist()
        out.append({"input_ids": ids, "labels": [-100] * (length // 3) + ids[length // 3 :]})
    return out


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma3"])
def test_padding_free_batches_give_the_padded_loss_and_lora_gradients(family, attention):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = tiny_model(family, attention)
    results = []
    for padding_free in (False, True):
        batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=padding_free)(examples())
        assert batch["input_ids"].shape == ((1, sum(EXAMPLE_LENGTHS)) if padding_free else (4, max(EXAMPLE_LENGTHS)))
        model.zero_grad()
        loss = model(**batch, use_cache=False).loss  # as SFTTrainer calls it: a cache would turn the packed mask off
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}))
    (padded_loss, padded), (packed_loss, packed) = results
    assert packed_loss == pytest.approx(padded_loss, rel=1e-6)
    for name, grad in padded.items():
        torch.testing.assert_close(packed[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_a_padding_free_run_trains_as_the_padded_one(home, tiny_config):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.events import Step
    from tuneforge.core.train import train_run

    def steps(padding_free: bool, name: str) -> list[Step]:
        run = create_run(tiny_config(max_steps=6, padding_free=padding_free), home / name)
        train_run(run, echo=None)
        assert run.load_config().padding_free is padding_free
        return [e for e in run.history().events if isinstance(e, Step)]

    padded, packed = steps(False, "padded"), steps(True, "packed")
    assert packed[0].loss == pytest.approx(padded[0].loss, rel=1e-4)  # the same first batch, the same loss
    assert packed[-1].loss < packed[0].loss
    assert all(step.tokens_per_second > 0 for step in packed)


def test_padding_free_is_on_for_a_gpu_where_nothing_compares_a_batchs_rows():
    from tests.core.test_plan import cpu, gpu
    from tuneforge.core.config import RunConfig
    from tuneforge.core.errors import ConfigError
    from tuneforge.core.settle import DataFacts, settle_run

    def settled(hardware, **settings):
        config = RunConfig(model="default", data="x.jsonl", **settings)
        return settle_run(config, hardware, DataFacts([64] * 40, train_examples=40), None).config

    assert settled(gpu(24), replay=0).padding_free is True
    assert settled(cpu(16), replay=0).padding_free is False  # measured no faster on a CPU
    assert settled(gpu(24)).padding_free is False  # small data replays under a KL term, which compares rows
    packed = settled(gpu(24), padding_free=True)  # asked for: replay trains without its KL term
    assert packed.padding_free is True and packed.replay and packed.replay_kl == 0
    assert settled(gpu(24), method="prompt").padding_free is False
    with pytest.raises(ConfigError, match="padding_free"):
        RunConfig.from_dict({"model": "default", "data": "x.jsonl", "method": "dpo", "padding_free": True})
