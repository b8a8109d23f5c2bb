"""Which decoder layers a model can lose, and a copy of the model without them.

A layer's block influence (ShortGPT, Men et al., 2024) is one minus the mean cosine similarity
of the hidden state going into it and coming out of it, over every token of some text: a layer
that barely turns the hidden state does little, and removing it costs little. The first and
last layers are never removed: the first turns embeddings into the residual stream the rest
reads, the last turns it into what the head predicts from, and both score high on every model
measured in the literature.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_directory
from ..errors import ModelError

SCORED_TEXTS = 64
"""Enough examples for a stable ranking of the layers; more only costs time."""
LAYER_THRESHOLDS = ("max_window_layers", "first_k_dense_replace")
"""Config settings that count layers from the bottom (Qwen2's full-attention layers, DeepSeek's dense
ones): after removing layers they count the kept layers below the old boundary."""
SCORES_FILE = "layer-scores.json"


def decoder_layers(model: Any) -> Any:
    """The model's stack of decoder layers: the ModuleList as long as its config's layer count."""
    import torch

    count = model.config.get_text_config().num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise ModelError(f"{model.config.model_type}: no list of {count} decoder layers found in the model",
                     "shrinking works on decoder-only transformers (Llama, Qwen, Gemma, SmolLM, Mistral, Phi…)")


def block_influence(model: Any, token_ids: Sequence[Sequence[int]]) -> list[float]:
    """Each decoder layer's block influence over the tokens of every sequence in `token_ids` (one at a
    time, so nothing is padding): 1 − mean cos(input, output) of its hidden states."""
    import torch

    layers = decoder_layers(model)
    totals = [0.0] * len(layers)
    count = 0

    def hook(index: int) -> Any:
        def record(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            given = args[0] if args else kwargs["hidden_states"]
            produced = output[0] if isinstance(output, tuple) else output
            cosine = torch.nn.functional.cosine_similarity(given.float(), produced.float(), dim=-1)
            totals[index] += float(cosine.sum())
        return record

    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        with torch.inference_mode():
            for ids in token_ids:
                if not ids:
                    continue
                model(input_ids=torch.tensor([list(ids)], device=model.device), use_cache=False)
                count += len(ids)
    finally:
        for handle in handles:
            handle.remove()
    if not count:
        raise ModelError("no tokens to score the layers on", "give data with at least one non-empty example (--data FILE)")
    return [round(1 - total / count, 6) for total in totals]


def least_influential(scores: Sequence[float], remove: int) -> list[int]:
    """The `remove` layers with the lowest scores, never the first or the last, in layer order."""
    inner = sorted(range(1, len(scores) - 1), key=lambda i: (scores[i], i))
    if remove > len(inner):
        raise ModelError(f"cannot remove {remove} of {len(scores)} layers: the first and last always stay",
                         f"keep at least 2 layers (remove at most {len(inner)})")
    return sorted(inner[:remove])


def remove_layers(model: Any, removed: Sequence[int]) -> Any:
    """The model with the decoder layers at `removed` taken out, in place, and its config made to agree:
    the layer count, every per-layer list (layer types such as sliding-window attention, per-layer
    flags), the layer-counting thresholds, and each kept layer's own index (its key/value cache slot)."""
    import torch

    layers = decoder_layers(model)
    config = model.config.get_text_config()
    before = len(layers)
    kept = [i for i in range(before) if i not in set(removed)]
    for name, value in list(vars(config).items()):
        if isinstance(value, list) and len(value) == before and name != "architectures":
            setattr(config, name, [value[i] for i in kept])
    for name in LAYER_THRESHOLDS:
        boundary = getattr(config, name, None)
        if isinstance(boundary, int):
            setattr(config, name, sum(1 for i in kept if i < boundary))
    config.num_hidden_layers = len(kept)
    new_layers = torch.nn.ModuleList(layers[i] for i in kept)
    for new_index, layer in enumerate(new_layers):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new_index
    _replace_module(model, layers, new_layers)
    return model


def _replace_module(model: Any, old: Any, new: Any) -> None:
    """Put `new` where `old` sits in the model's module tree."""
    for module in model.modules():
        for name, child in module.named_children():
            if child is old:
                setattr(module, name, new)
                return


def write_pruned(model: Any, tokenizer: Any, generation: Any, target: Path, record: dict[str, Any]) -> Path:
    """Save the pruned model as a plain 16-bit-or-as-loaded safetensors checkpoint with its tokenizer,
    generation config and `record` (the scores and what was removed), atomically at `target`."""
    with atomic_directory(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if generation is not None:
            generation.save_pretrained(staging)
        (staging / SCORES_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return target


def checkpoint_parameters(folder: Path) -> int | None:
    """The parameter count of a safetensors checkpoint, read from its file headers (tied weights are
    stored once); None when it has no safetensors files."""
    from safetensors import safe_open

    total = 0
    files = sorted(folder.glob("*.safetensors"))
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():
                total += math.prod(handle.get_slice(name).get_shape())
    return total if files else None
