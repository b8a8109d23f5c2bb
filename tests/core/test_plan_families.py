"""The planner's terms for this year's layer kinds against what transformers builds and what autograd keeps:
Qwen3.5's gated attention and gated-DeltaNet layers, gpt-oss's mixture of experts with eager attention, and Gemma 4's
wider full-attention layers, shared keys and values and per-layer input embeddings."""

from __future__ import annotations

import pytest

from tuneforge.core.catalog import architecture
from tuneforge.core.memory import activation_bytes_per_token, lora_parameters, model_shape

TOKENS = 256


def tiny_config(kind: str, layers: int):
    """A small config of `kind` whose every term is large enough to see: Llama as the reference, Qwen3.5 with its
    3:1 hybrid pattern (grouped value heads, key and value head sizes that differ), gpt-oss with eight experts, four
    a token, sliding and full attention; Gemma 4 as its E2B (full attention layers with heads of 512, as published,
    the second half reusing the first half's keys and values with MLPs twice as wide, per-layer input embeddings)."""
    from transformers import Gemma4TextConfig, GptOssConfig, LlamaConfig, Qwen3_5TextConfig

    common = dict(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=layers, num_attention_heads=4,
                  num_key_value_heads=2)
    if kind == "qwen3_5":
        return Qwen3_5TextConfig(**common, head_dim=64, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=32,
                                 linear_value_head_dim=48, layer_types=(["linear_attention"] * 3 + ["full_attention"]) * (layers // 4))
    if kind == "gpt_oss":
        return GptOssConfig(**common, head_dim=64, num_local_experts=8, num_experts_per_tok=4,
                            layer_types=["sliding_attention", "full_attention"] * (layers // 2))
    if kind == "gemma4":
        return Gemma4TextConfig(**common, vocab_size_per_layer_input=1000, head_dim=64, global_head_dim=512, hidden_size_per_layer_input=16,
                                sliding_window=128, layer_types=["sliding_attention", "full_attention"] * (layers // 2),
                                num_kv_shared_layers=layers // 2, use_double_wide_mlp=True)
    return LlamaConfig(**common)


def adapted_model(kind: str, layers: int):
    """A random model of `kind` with LoRA (rank 8) on the targets tuneforge gives its architecture."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = tiny_config(kind, layers)
    model = AutoModelForCausalLM.from_config(config)
    return get_peft_model(model, LoraConfig(r=8, target_modules=list(architecture(config.model_type).lora_targets)))


def saved_bytes(model) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one forward of the decoder over TOKENS tokens (weights
    not counted). The decoder alone, as TRL's loss runs it: a whole model asked for the last position's logits only
    runs Gemma 4's layers that reuse keys and values over that position alone."""
    import torch

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    torch.manual_seed(0)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.get_base_model().model(input_ids=torch.randint(0, 1000, (1, TOKENS)), use_cache=False)
    return sum(kept.values())


@pytest.mark.parametrize("kind", ["llama", "qwen3_5", "gpt_oss", "gemma4"])
def test_the_planner_counts_what_transformers_builds_and_autograd_keeps(kind, tmp_path):
    model = adapted_model(kind, 4)
    model.base_model.model.config.save_pretrained(tmp_path)
    params_b, shape = model_shape(tmp_path)
    weights = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name)
    adapter = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Norms and biases are left out of the count: a fraction of a percent.
    assert params_b * 1e9 == pytest.approx(weights, rel=0.005)
    assert lora_parameters(shape, 8, architecture(model.config.model_type).lora_targets) == adapter
    # Four more layers (one more period of each pattern) keep four layers' activations more.
    counted = (saved_bytes(adapted_model(kind, 8)) - saved_bytes(model)) / 4 / TOKENS
    planned = activation_bytes_per_token(shape, "lora", 8, False, architecture(model.config.model_type).lora_targets, TOKENS)
    assert planned == pytest.approx(counted, rel=0.02)



@pytest.mark.standard  # builds two multimodal checkpoints with real vocabularies
@pytest.mark.parametrize("kind", ["ministral3_vision", "qwen3_5_vision"])
def test_a_multimodal_checkpoint_is_planned_with_what_loading_it_for_text_loads(kind, vocab_tokenizer, tmp_path):
    # Ministral 3 loads whole (its Pixtral tower beside the language model, read from the weights' headers); Qwen3.5
    # loads its language model alone.
    from tests.conftest import build_tiny_model
    from tuneforge.core.language_model import load_language_model

    folder = build_tiny_model(kind, vocab_tokenizer("llama-bpe" if kind.startswith("ministral3") else "qwen35"), tmp_path / kind,
                              layers=2 if kind.startswith("ministral3") else 4)
    loaded = sum(parameter.numel() for parameter in load_language_model(folder).parameters())
    planned, shape = model_shape(folder)
    assert planned * 1e9 == pytest.approx(loaded, rel=0.005)
    assert (shape.towers_b > 0) == kind.startswith("ministral3")
