"""Loading a checkpoint as a model that writes text, whichever way transformers lists its architecture.

Most chat models load with AutoModelForCausalLM. Some multimodal checkpoints are listed by transformers only as
image-text-to-text models (Mistral 3 and the Ministral 3 sizes: a Pixtral vision tower beside the language model).
They still take token ids and return next-token logits, so training, merging and verification treat them as any
other: the language model is trained, and the vision tower is kept as it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def language_model_class(model_dir: str | Path) -> Any:
    """The transformers auto class that loads `model_dir` as a text-writing model: AutoModelForCausalLM, or
    AutoModelForImageTextToText for a model type transformers has no causal-LM class for."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    config_file = Path(model_dir) / "config.json"
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):  # a hub id, or a folder AutoModelForCausalLM's own error describes
        return AutoModelForCausalLM
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return AutoModelForImageTextToText
    return AutoModelForCausalLM


def local_kernels_only() -> dict[str, Any]:
    """The `from_pretrained` setting that keeps a model on the kernels installed here: transformers (5.25) otherwise
    fetches layer kernels (RMSNorm, rotary embeddings) from the hub and runs them as a model loads on CUDA. tuneforge
    runs no downloaded code unless asked, as with trust_remote_code, and a model loads the same offline. Setting
    transformers' own USE_HUB_KERNELS leaves the choice to it."""
    return {} if "USE_HUB_KERNELS" in os.environ else {"use_kernels": False}


def load_language_model(model_dir: str | Path, **settings: Any) -> Any:
    """`model_dir` loaded by the class `language_model_class` picks, on the kernels installed here (its head's input
    made contiguous); `settings` go to `from_pretrained`."""
    return contiguous_head_input(language_model_class(model_dir).from_pretrained(model_dir, **local_kernels_only(), **settings))


def contiguous_head_input(model: Any) -> Any:
    """`model`, its LM head now given a contiguous input (a forward pre-hook; a model without a head is unchanged).

    Generation projects the last position only, `hidden[:, -1:, :]`: a strided view. torch's matmul on a CPU (bf16;
    fp32 was not affected) multiplies such a batch of rows by a weight that does not require grad as a batched
    product with the weight expanded over the batch and copied: batch × hidden × vocabulary values. A frozen head (an
    adapter's base, a teacher) paid that at every answer's first token: 0.9 GB measured for SmolLM2-135M answering
    16 questions at once (by the same count, 20 GB for an 8B Qwen3), for a product of 16 rows. A contiguous input is
    one matrix product, as for a trained head. (Not measured on a GPU; the hook costs one small copy there.)"""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and not getattr(head, "_tuneforge_contiguous_input", False):
        head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))
        head._tuneforge_contiguous_input = True
    return model
