"""A first-order estimate of training memory, term by term, so a person sees whether a run fits.

Terms: frozen base weights (nf4 with double quantization ≈ 0.52 bytes per parameter of the
linear layers under QLoRA, with embeddings kept 16-bit; 16-bit on a GPU otherwise; fp32 on a
CPU, and fp32 master weights wherever the model's own weights train), the trained parameters
(LoRA, virtual tokens, top layers or all weights) with their gradients and AdamW states
(16 bytes each, 12 on top of fp32 weights already counted), activations
kept for the backward pass (or only each layer's input under gradient checkpointing), the
logits in fp32 with their gradient (vocabulary × tokens, often the largest term), and
the runtime (CUDA context or the Python process with its libraries).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .catalog import Shape, find_spec
from .methods import LORA_FAMILY, method_spec

GIB = 2**30
QLORA_BYTES_PER_PARAM = 0.52
"""nf4 (4 bits) plus one fp8 scale per 64 weights and the double-quantized scales' scales."""
ADAPTER_BYTES_PER_PARAM = 16
"""fp32 weight, fp32 gradient, and AdamW's two fp32 moments."""
RUNTIME_GB = {"GPU": 0.6, "CPU": 1.0}


@dataclass(frozen=True)
class MemoryEstimate:
    """An estimate, as named terms in GiB, against the device's memory."""

    device: str
    parts: tuple[tuple[str, float], ...]
    budget_gb: float

    @property
    def total_gb(self) -> float:
        """The sum of all terms."""
        return sum(gb for _, gb in self.parts)

    @property
    def verdict(self) -> str:
        """"fits" (with a 15% margin), "tight" (within the budget) or "too big"."""
        if self.total_gb <= 0.85 * self.budget_gb:
            return "fits"
        return "tight" if self.total_gb <= self.budget_gb else "too big"


def model_shape(model: str) -> tuple[float, Shape] | None:
    """Parameters (billions) and dimensions of a catalog model or a local HF folder; None when unknown."""
    spec = find_spec(model)
    if spec is not None:
        return spec.params_b, spec.shape
    config_file = Path(model).expanduser() / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        config = config.get("text_config", config)
        hidden, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
        intermediate = config.get("intermediate_size", 4 * hidden)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    shape = Shape(hidden, layers, intermediate, vocab)
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
    return (layers * layer_parameters(shape) + embeddings) / 1e9, shape


def layer_parameters(shape: Shape) -> int:
    """Parameters of one decoder layer: four attention projections and a three-matrix (SwiGLU) MLP."""
    return 4 * shape.hidden * shape.hidden + 3 * shape.hidden * shape.intermediate


def lora_parameters(shape: Shape, rank: int) -> int:
    """Trainable parameters of LoRA on every linear layer: r × (in + out) per adapted matrix."""
    attention = 4 * 2 * shape.hidden
    mlp = 3 * (shape.hidden + shape.intermediate)
    return shape.layers * rank * (attention + mlp)


def trained_parameters(method: str, params: float, shape: Shape, lora_r: int, freeze_layers: int = 2,
                       virtual_tokens: int = 20) -> float:
    """How many parameters `method` trains (first order: attention and MLP matrices, no norms)."""
    if method == "full":
        return params
    if method == "freeze":
        return min(freeze_layers, shape.layers) * layer_parameters(shape)
    if method == "ia3":
        return shape.layers * (2 * shape.hidden + shape.intermediate)
    if method == "prefix":
        return shape.layers * 2 * virtual_tokens * shape.hidden
    if method in ("prompt", "ptuning"):
        return virtual_tokens * shape.hidden * (1 if method == "prompt" else 4)
    return lora_parameters(shape, lora_r)


def estimate_training_memory(params_b: float, shape: Shape, *, method: str, batch_size: int, seq_len: int,
                             lora_r: int, gradient_checkpointing: bool, on_gpu: bool,
                             budget_gb: float, freeze_layers: int = 2) -> MemoryEstimate:
    """The memory one training step needs for `method`, as a breakdown."""
    spec = method_spec(method)
    params = params_b * 1e9
    embeddings = shape.vocab * shape.hidden
    linear = max(0.0, params - embeddings)
    whole = spec.weights == "whole"
    if on_gpu and method == "qlora":
        weights = linear * QLORA_BYTES_PER_PARAM + embeddings * 2
    else:
        weights = params * (4 if whole or not on_gpu else 2)
    value_bytes = 2 if on_gpu else 4
    # Preference methods run the chosen and the rejected answer through the model together.
    tokens = batch_size * seq_len * (2 if spec.pairs_data else 1)
    per_layer_values = 10 * shape.hidden + 4 * shape.intermediate  # attention and SwiGLU MLP intermediates per token
    if gradient_checkpointing:
        activations = tokens * (shape.layers * shape.hidden + per_layer_values) * value_bytes
    else:
        activations = tokens * shape.layers * per_layer_values * value_bytes
    logits = tokens * shape.vocab * 4 * 2
    trained = trained_parameters(method, params, shape, lora_r, freeze_layers)
    trained_bytes = trained * (ADAPTER_BYTES_PER_PARAM - 4 if whole else ADAPTER_BYTES_PER_PARAM)
    device = "GPU" if on_gpu else "CPU"
    parts = (
        ("base weights", weights / GIB),
        ("LoRA + optimizer" if method in LORA_FAMILY else "trained + optimizer", trained_bytes / GIB),
        ("activations", activations / GIB),
        ("logits", logits / GIB),
        ("runtime", RUNTIME_GB[device]),
    )
    return MemoryEstimate(device, parts, budget_gb)
