"""A Gemma checkpoint that differs from what llama.cpp's graph computes is refused, each difference named,
rather than exported into a file that answers wrong."""

from __future__ import annotations

import gguf
import pytest

from tuneforge.core.errors import ExportError
from tuneforge.exporters.gguf.architectures import add_gemma2_hyperparameters, add_gemma3_hyperparameters

GEMMA2 = {"model_type": "gemma2", "num_hidden_layers": 4, "hidden_size": 64, "num_attention_heads": 4, "head_dim": 16,
          "query_pre_attn_scalar": 16, "sliding_window": 128, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
          "layer_types": ["sliding_attention", "full_attention"] * 2}


def writer(tmp_path, arch: str) -> gguf.GGUFWriter:
    return gguf.GGUFWriter(tmp_path / "probe.gguf", arch)


def test_gemma2_writes_its_window_and_caps_and_refuses_another_layer_pattern(tmp_path):
    written = writer(tmp_path, "gemma2")
    add_gemma2_hyperparameters(written, GEMMA2)
    keys = {key for kv in written.kv_data for key in kv}
    assert {"gemma2.attention.sliding_window", "gemma2.attn_logit_softcapping", "gemma2.final_logit_softcapping"} <= keys
    swapped = {**GEMMA2, "layer_types": ["full_attention", "sliding_attention"] * 2, "query_pre_attn_scalar": 64}
    with pytest.raises(ExportError) as refused:
        add_gemma2_hyperparameters(writer(tmp_path, "gemma2"), swapped)
    assert "pattern of sliding and global layers" in refused.value.message and "query_pre_attn_scalar" in refused.value.message
    assert "Gemma 2 2B, 9B or 27B" in refused.value.hint


def test_gemma3_refuses_attention_softcapping(tmp_path):
    config = {**GEMMA2, "model_type": "gemma3_text", "layer_types": ["sliding_attention"] * 5 + ["full_attention"]}
    with pytest.raises(ExportError, match="attention logit softcapping"):
        add_gemma3_hyperparameters(writer(tmp_path, "gemma3"), config)
