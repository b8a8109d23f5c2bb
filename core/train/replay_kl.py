"""Replay held by the base's whole distribution: a KL term on the replayed answers' tokens.

Replayed answers train as plain answers: the tuned model learns the base's greedy words. With
`replay_kl` above 0 the replayed rows of each batch also pay `replay_kl × KL(base ‖ tuned)` on their
answer tokens, where the base is the same model with its adapter switched off, so every probability
the base gave (not only the word it chose) holds the tuned model near it on general text, while the
data's own answers stay free to move. It costs one more forward and backward pass over the replayed
rows and one forward pass of the base; adapter methods only (a base without an adapter has no base
to switch back to).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trl import SFTTrainer


class ReplayKLTrainer(SFTTrainer):
    """TRL's SFT trainer, plus a KL term to the base on the rows of each batch that are replayed answers."""

    def __init__(self, *args: Any, replayed: Iterable[tuple[int, ...]], weight: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replayed = set(replayed)
        """The token ids of every replayed example: a batch row is replayed when its unpadded ids are one of them."""
        self.weight = weight

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        result = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if not model.training:
            return result
        rows = self.replayed_rows(inputs)
        if not rows:
            return result
        kl = self.replay_kl(model, inputs, rows)
        self._metrics["train"]["replay_kl"].append(kl.item())
        if return_outputs:
            loss, outputs = result
            return loss + self.weight * kl, outputs
        return result + self.weight * kl

    def replayed_rows(self, inputs: dict[str, Any]) -> list[int]:
        """The indices of the batch's rows that are replayed answers."""
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        rows = []
        for i in range(ids.shape[0]):
            tokens = ids[i][mask[i].bool()] if mask is not None else ids[i]
            if tuple(tokens.tolist()) in self.replayed:
                rows.append(i)
        return rows

    def replay_kl(self, model: Any, inputs: dict[str, Any], rows: list[int]) -> Any:
        """KL(base ‖ tuned) over the answer tokens of `rows`, the base being the model with its adapter off.

        Both models project only the positions whose next token is trained in some row (`logits_to_keep`):
        a 262k vocabulary's logits over whole rows would cost gigabytes for a term that reads the answers only."""
        import torch
        import torch.nn.functional as F

        forward = {k: inputs[k][rows] for k in ("input_ids", "attention_mask") if k in inputs}
        trained = inputs["labels"][rows][:, 1:] != -100  # the logits at position t predict token t + 1
        positions = trained.any(0).nonzero().squeeze(-1)
        if positions.numel() == 0:
            return inputs["input_ids"].new_zeros((), dtype=torch.float32)
        tuned = model(**forward, use_cache=False, logits_to_keep=positions).logits
        with torch.no_grad(), self.accelerator.unwrap_model(model).disable_adapter():
            base = model(**forward, use_cache=False, logits_to_keep=positions).logits
        mask = trained[:, positions]
        return F.kl_div(F.log_softmax(tuned[mask].float(), -1), F.log_softmax(base[mask].float(), -1),
                        log_target=True, reduction="batchmean")
