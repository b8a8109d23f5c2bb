"""The merged checkpoint gives the same logits as base + adapter and loads like any HF model."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneforge.core.api.runs import create_run
from tuneforge.core.merge import merge_run
from tuneforge.core.train import train_run


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_merged_logits_equal_base_plus_adapter(home, tiny_llama, tiny_config, method):
    # For QLoRA the merge reloads the base unquantized: merging into 4-bit weights would round the update away.
    run = create_run(tiny_config(max_steps=6, method=method), home / "run")
    train_run(run, echo=None)
    merged_dir = merge_run(run, dtype="float32")

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Who keeps the Quillon lighthouse?"}], tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, run.adapter).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = with_adapter(**inputs).logits
        got = merged(**inputs).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)(**inputs).logits
    assert not torch.allclose(expected, plain, atol=1e-3), "the adapter changed nothing; the test would prove nothing"
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    generation = json.loads((merged_dir / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in generation["eos_token_id"]
    assert not list(merged_dir.glob("*.bin")), "merged weights must be safetensors"
    assert run.state() == "merged"


def test_default_merge_writes_16_bit_weights(home, tiny_config):
    run = create_run(tiny_config(max_steps=2), home / "run")
    train_run(run, echo=None)
    merged = AutoModelForCausalLM.from_pretrained(merge_run(run))
    assert merged.dtype in (torch.float16, torch.bfloat16)
    assert not any(p.name.startswith(".merged") for p in run.path.iterdir()), "a staging folder was left behind"
