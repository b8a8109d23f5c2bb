"""Throughput: what tuneforge's training does beyond a plain TRL script, at the same loss.

- The LM head projects only the tokens that are trained (the answers), on every device; so do the distillation
  and replay KL losses, for the student, the teacher and the base.
- Batches of examples of similar length, once the data is large enough to keep them random.
- bf16 autocast on CPUs with bf16 matrix units (Hardware.compute_dtype), fp32 elsewhere on CPU.
- Gradient checkpointing only when the memory plan needs it (core/fit.py): TRL turns it on
  by default, which recomputes every layer's forward pass.
- tcmalloc instead of glibc's malloc for training processes (core/allocator.py).

bench/train.py measures the result against the plain script.
"""

from __future__ import annotations

from typing import Any

GROUPING_MIN_BATCHES = 100
"""Length grouping sorts each group of 50 batches by length; with fewer than two such groups
every epoch would see the same batches in the same longest-first order."""


def project_answers_only() -> None:
    """Make TRL's chunked LM head skip prompt and padding positions on CPUs too.

    TRL gathers the positions whose label is trained before the vocabulary projection only
    where Triton runs (CUDA, XPU): on compiled backends (XLA, Neuron) a varying number of
    positions would force a recompilation. Eager CPU training has no such cost, and the head
    is a large share of a small model's work: a fifth of SmolLM2-135M's weights, applied twice
    (forward, and again in the backward pass), while answers are about a third of a chat
    example's tokens. The loss is the same sum over the same positions.
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None or getattr(original, "answers_only", False):
        return

    def gather_trained_positions(device: Any) -> bool:
        return device.type == "cpu" or original(device)

    gather_trained_positions.answers_only = True  # type: ignore[attr-defined]
    trl_utils._use_triton = gather_trained_positions


def trained_positions(labels: Any) -> Any:
    """The positions whose logits predict a trained token in some row of the batch (position t predicts token t + 1),
    for losses that project only those over the vocabulary (`logits_to_keep`): distillation's and replay's KL terms."""
    return (labels[:, 1:] != -100).any(0).nonzero().squeeze(-1)


def length_grouping(train_examples: int, batch_size: int) -> dict[str, Any]:
    """TrainingArguments that put examples of similar length into one batch (less padding to
    compute), for data of at least GROUPING_MIN_BATCHES batches; {} for smaller data."""
    if train_examples < GROUPING_MIN_BATCHES * batch_size:
        return {}
    from transformers import TrainingArguments

    if "train_sampling_strategy" in TrainingArguments.__dataclass_fields__:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}  # transformers before the sampling-strategy option
