"""What each supported architecture looks like in GGUF: its llama.cpp name, hyperparameters, tensor layout."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gguf
import numpy as np

from tuneforge.core.errors import ExportError

from .types import EXPORTABLE_ARCHITECTURES


@dataclass(frozen=True)
class Architecture:
    """How one transformers `model_type` maps onto a llama.cpp architecture."""

    gguf_arch: gguf.MODEL_ARCH
    permute_qk: bool
    """llama.cpp's llama graph expects Q/K rows in GGML's rotary order, not HF's halves."""


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(gguf.MODEL_ARCH.LLAMA, permute_qk=True),  # Llama 2/3.x, SmolLM/SmolLM2
    "mistral": Architecture(gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    "qwen2": Architecture(gguf.MODEL_ARCH.QWEN2, permute_qk=False),
    "qwen3": Architecture(gguf.MODEL_ARCH.QWEN3, permute_qk=False),
    "phi3": Architecture(gguf.MODEL_ARCH.PHI3, permute_qk=False),  # Phi-3.x, Phi-4-mini (fused qkv and gate_up)
    "gemma2": Architecture(gguf.MODEL_ARCH.GEMMA2, permute_qk=False),  # Gemma 2 2B, 9B, 27B
    "gemma3_text": Architecture(gguf.MODEL_ARCH.GEMMA3, permute_qk=False),  # Gemma 3 270M and 1B (text-only checkpoints)
}
GEMMA_ARCHITECTURES = (gguf.MODEL_ARCH.GEMMA2, gguf.MODEL_ARCH.GEMMA3)
"""Gemma's RMSNorms scale by 1 + weight, llama.cpp's by the weight: the file holds 1 + weight."""
GEMMA3_SWA_PATTERN, GEMMA3_LOCAL_ROPE_BASE = 6, 10000.0
"""What llama.cpp's gemma3 graph assumes: every sixth layer attends globally, the others in a sliding
window with RoPE base 10,000 (a checkpoint that differs is refused rather than exported wrong)."""


assert set(ARCHITECTURES) == set(EXPORTABLE_ARCHITECTURES), "types.EXPORTABLE_ARCHITECTURES lists what this table writes"


def architecture_for(config: dict[str, Any], where: str) -> Architecture:
    """The Architecture for a model's config.json; an ExportError listing the supported ones."""
    model_type = config.get("model_type", "?")
    if model_type not in ARCHITECTURES:
        raise ExportError(
            f"{where}: GGUF export does not support the '{model_type}' architecture",
            f"supported: {', '.join(sorted(ARCHITECTURES))}",
        )
    return ARCHITECTURES[model_type]


def head_dim(config: dict[str, Any]) -> int:
    """Per-head dimension (explicit in Qwen3 configs, derived elsewhere)."""
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """RoPE settings from either the transformers 5 `rope_parameters` or the older `rope_scaling`/`rope_theta`
    (for Gemma 3, those of its global-attention layers: llama.cpp fixes the sliding layers' own)."""
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    if "full_attention" in params:
        params = dict(params["full_attention"])
    params.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    return params


def add_hyperparameters(writer: gguf.GGUFWriter, config: dict[str, Any]) -> None:
    """The hyperparameters llama.cpp reads for the llama, qwen2 and qwen3 graphs."""
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config.get("max_position_embeddings", 4096))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads", config["num_attention_heads"]))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_vocab_size(config["vocab_size"])
    dim = head_dim(config)
    rope = rope_parameters(config)
    writer.add_rope_dimension_count(int(dim * rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))))
    if dim != config["hidden_size"] // config["num_attention_heads"]:
        writer.add_key_length(dim)
        writer.add_value_length(dim)
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    kind = rope.get("rope_type") or rope.get("type")
    if config.get("model_type") == "gemma3_text":
        add_gemma3_hyperparameters(writer, config)
    if config.get("model_type") == "gemma2":
        add_gemma2_hyperparameters(writer, config)
    if config.get("model_type") == "phi3":
        # llama.cpp tells Phi-4 from Phi-3 by a zero sliding window.
        writer.add_sliding_window(config.get("sliding_window") or 0)
        writer.add_rope_scaling_orig_ctx_len(config.get("original_max_position_embeddings") or config.get("max_position_embeddings", 4096))
        if kind in ("longrope", "su"):
            scale = config["max_position_embeddings"] / config["original_max_position_embeddings"]
            original = config["original_max_position_embeddings"]
            writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1 else 1.0)
            return
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(rope["factor"])
        writer.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    elif kind not in (None, "default", "llama3"):  # llama3 scaling travels as the rope_freqs tensor
        raise ExportError(f"RoPE scaling '{kind}' is not supported by the GGUF export", "export a model without it")


def add_gemma3_hyperparameters(writer: gguf.GGUFWriter, config: dict[str, Any]) -> None:
    """Gemma 3's sliding window (and a refusal where the checkpoint differs from what llama.cpp's graph assumes)."""
    layer_types = config.get("layer_types") or []
    expected = ["full_attention" if (i + 1) % GEMMA3_SWA_PATTERN == 0 else "sliding_attention" for i in range(len(layer_types))]
    local = (config.get("rope_parameters") or {}).get("sliding_attention", {}).get("rope_theta", config.get("rope_local_base_freq"))
    _require_gemma_graph("Gemma 3", "gemma3", "270M, 1B or 4B", (
        ("its pattern of sliding and global layers", layer_types != expected),
        ("the sliding layers' RoPE base", local not in (None, GEMMA3_LOCAL_ROPE_BASE)),
        ("query_pre_attn_scalar (not the head size)", config.get("query_pre_attn_scalar", head_dim(config)) != head_dim(config)),
        ("attention logit softcapping", bool(config.get("attn_logit_softcapping"))),
    ))
    _add_window_and_softcaps(writer, config)


def add_gemma2_hyperparameters(writer: gguf.GGUFWriter, config: dict[str, Any]) -> None:
    """Gemma 2's softcapping and sliding window (and a refusal where the checkpoint differs from llama.cpp's graph)."""
    layers = config["num_hidden_layers"]
    layer_types = config.get("layer_types") or []
    # llama.cpp's gemma2 graph: even layers attend in the window, odd ones globally; queries are scaled
    # by the head size, except in the 27B (told by its 46 layers), by hidden / heads.
    expected = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(len(layer_types))]
    scalar = config["hidden_size"] // config["num_attention_heads"] if layers == 46 else head_dim(config)
    _require_gemma_graph("Gemma 2", "gemma2", "2B, 9B or 27B", (
        ("its pattern of sliding and global layers", layer_types != expected),
        ("query_pre_attn_scalar", config.get("query_pre_attn_scalar", scalar) != scalar),
    ))
    _add_window_and_softcaps(writer, config)


def _require_gemma_graph(family: str, graph: str, sizes: str, checks: tuple[tuple[str, bool], ...]) -> None:
    """Refuse a checkpoint that differs from what llama.cpp's `graph` computes, naming each difference,
    rather than write a file that would answer wrong."""
    differs = [what for what, bad in checks if bad]
    if differs:
        raise ExportError(f"this {family} checkpoint differs from what llama.cpp's {graph} graph computes: {', '.join(differs)}",
                          f"export a {family} {sizes} fine-tune, or chat with the run through transformers")


def _add_window_and_softcaps(writer: gguf.GGUFWriter, config: dict[str, Any]) -> None:
    """The sliding window, and the attention and final-logit softcapping where the config has them."""
    writer.add_sliding_window(config["sliding_window"])
    if config.get("attn_logit_softcapping"):
        writer.add_attn_logit_softcapping(config["attn_logit_softcapping"])
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(config["final_logit_softcapping"])


def permute_for_rope(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder Q/K rows from HF's rotate-half layout to GGML's interleaved pairs."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2)
            .reshape(weights.shape))


def transform(arch: Architecture, config: dict[str, Any], name: str, data: np.ndarray) -> np.ndarray:
    """Apply the architecture's layout change to one HF tensor (see GEMMA_ARCHITECTURES, ARCHITECTURES)."""
    if arch.gguf_arch in GEMMA_ARCHITECTURES and name.endswith("norm.weight"):
        return data + 1
    if arch.permute_qk:
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            return permute_for_rope(data, config["num_attention_heads"])
        if name.endswith(("k_proj.weight", "k_proj.bias")):
            return permute_for_rope(data, config.get("num_key_value_heads", config["num_attention_heads"]))
    return data


def extra_tensors(config: dict[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
    """Tensors GGUF needs that HF checkpoints keep in the config: RoPE factors (Llama 3.1, Phi-3 LongRoPE)."""
    rope = rope_parameters(config)
    kind = rope.get("rope_type") or rope.get("type")
    if kind in ("longrope", "su") and rope.get("long_factor"):
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight", np.asarray(rope["long_factor"], dtype=np.float32)
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight", np.asarray(rope["short_factor"], dtype=np.float32)
        return
    if kind != "llama3":
        return
    dim = head_dim(config)
    freqs = 1.0 / (float(rope["rope_theta"]) ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in freqs:
        wavelength = 2 * math.pi / freq
        if wavelength < old_context / high:
            factors.append(1.0)
        elif wavelength > old_context / low:
            factors.append(factor)
        else:
            smooth = (old_context / wavelength - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", np.asarray(factors, dtype=np.float32)
