"""Replay held by the base's whole distribution: a KL term on the replayed answers' tokens.

Replayed answers train as plain answers: the tuned model learns the base's greedy words. With
`replay_kl` above 0 the replayed rows of each batch also pay `replay_kl × KL(base ‖ tuned)` on their
answer tokens, where the base is the same model with its adapter switched off, so every probability
the base gave (not only the word it chose) holds the tuned model near it on general text, while the
data's own answers stay free to move. Adapter methods only (a base without an adapter has no base to
switch back to).

The replayed rows go through the tuned model once, apart from the data's rows: the logits at their
answers give both their share of the answer loss and the KL term. The cost beyond plain replay is one
forward pass of the base over them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trl import SFTTrainer

from .speed import trained_positions


class ReplayKLTrainer(SFTTrainer):
    """TRL's SFT trainer, plus a KL term to the base on the rows of each batch that are replayed answers."""

    def __init__(self, *args: Any, replayed: Iterable[tuple[int, ...]], weight: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replayed = set(replayed)
        """The token ids of every replayed example: a batch row is replayed when its unpadded ids are one of them."""
        self.weight = weight

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        rows = self.replayed_rows(inputs) if model.training and not return_outputs else []
        if not rows:
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        labels = inputs["labels"]
        # The answer loss is a sum over every answer token of the batch (and of the micro-batches it accumulates
        # with) divided by their count: the data's rows and the replayed ones share that count.
        count = num_items_in_batch if num_items_in_batch is not None else (labels[:, 1:] != -100).sum()
        data = [i for i in range(labels.shape[0]) if i not in rows]
        loss = super().compute_loss(model, _rows(inputs, data), num_items_in_batch=count) if data else 0.0
        answer_loss, kl = self.replayed_terms(model, inputs, rows)
        self._metrics["train"]["replay_kl"].append(kl.item())
        return loss + answer_loss / count + self.weight * kl

    def replayed_rows(self, inputs: dict[str, Any]) -> list[int]:
        """The indices of the batch's rows that are replayed answers."""
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        rows = []
        for i in range(ids.shape[0]):
            tokens = ids[i][mask[i].bool()] if mask is not None else ids[i]
            if tuple(tokens.tolist()) in self.replayed:
                rows.append(i)
        return rows

    def replayed_terms(self, model: Any, inputs: dict[str, Any], rows: list[int]) -> tuple[Any, Any]:
        """The summed answer loss of `rows` and KL(base ‖ tuned) over their answer tokens, the base being the model
        with its adapter off.

        Both models project only the positions whose next token is trained in some row (`logits_to_keep`):
        a 262k vocabulary's logits over whole rows would cost gigabytes for terms that read the answers only."""
        import torch
        import torch.nn.functional as F

        forward = _rows({k: inputs[k] for k in ("input_ids", "attention_mask") if k in inputs}, rows)
        labels = inputs["labels"][rows]
        positions = trained_positions(labels)
        targets = labels[:, 1:][:, positions]
        if positions.numel() == 0:
            zero = inputs["input_ids"].new_zeros((), dtype=torch.float32)
            return zero, zero
        tuned = model(**forward, use_cache=False, logits_to_keep=positions).logits
        with torch.no_grad(), self.accelerator.unwrap_model(model).disable_adapter():
            base = model(**forward, use_cache=False, logits_to_keep=positions).logits
        mask = targets != -100
        tuned_log_probs = F.log_softmax(tuned[mask].float(), -1)
        answer_loss = F.nll_loss(tuned_log_probs, targets[mask], reduction="sum")
        kl = F.kl_div(tuned_log_probs, F.log_softmax(base[mask].float(), -1), log_target=True, reduction="batchmean")
        return answer_loss, kl


def _rows(inputs: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """`inputs` with only `rows` of every per-row tensor (the others, such as flags, as they are)."""
    size = inputs["input_ids"].shape[0]
    return {key: value[rows] if hasattr(value, "shape") and value.ndim and value.shape[0] == size else value
            for key, value in inputs.items()}
