"""Guards against the two classic failures of fine-tuning on a small dataset.

Overfitting: a `warning` event when eval loss rises while train loss keeps falling.
Forgetting: perplexity on a small general-text set before and after training; a rise
means the model lost some of what it knew before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib import resources
from typing import Any

from transformers import TrainerCallback

from ..events import Warned
from ..runs import RunDir

GENERAL_TEXT = "general-text.txt"
PROBE_BLOCK_TOKENS = 128
"""Length of each scored block: short enough for any model's context and a CPU's memory."""


def general_text() -> list[str]:
    """The shipped general-knowledge paragraphs the forgetting probe scores."""
    text = (resources.files("tuneforge.core") / "datasets" / GENERAL_TEXT).read_text(encoding="utf-8")
    return [paragraph.strip() for paragraph in text.split("\n\n") if paragraph.strip()]


def general_perplexity(model: Any, tokenizer: Any) -> float:
    """Perplexity of `model` on the general-text set (token-weighted over all blocks).

    Passing labels lets peft place them after any virtual tokens, so prompt-tuned models are
    scored with their learned prompt, as they will answer.
    """
    import torch

    device = next(p.device for p in model.parameters())
    total_loss, total_tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for paragraph in general_text():
            ids = tokenizer(paragraph, add_special_tokens=True)["input_ids"][:PROBE_BLOCK_TOKENS]
            batch = torch.tensor([ids], device=device)
            loss = model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch).loss
            total_loss += float(loss) * (len(ids) - 1)
            total_tokens += len(ids) - 1
    model.train(was_training)
    return math.exp(total_loss / max(total_tokens, 1))


class OverfitWatch(TrainerCallback):
    """Warn once when eval loss rises between two evaluations while train loss fell over the same span."""

    def __init__(self, run: RunDir, echo: Callable[[str], None] | None) -> None:
        self.run = run
        self.echo = echo
        self._train_losses: list[float] = []
        self._previous: tuple[float, float] | None = None  # (eval loss, mean train loss) at the last evaluation
        self.warned = False

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" in logs:
            self._train_losses.append(logs["loss"])
        if "eval_loss" not in logs or not self._train_losses:
            return
        train_loss = sum(self._train_losses) / len(self._train_losses)
        self._train_losses = []
        previous, self._previous = self._previous, (logs["eval_loss"], train_loss)
        if previous is None or self.warned:
            return
        if logs["eval_loss"] > previous[0] and train_loss < previous[1]:
            self.warned = True
            message = (f"eval loss rose {previous[0]:.3f} → {logs['eval_loss']:.3f} while train loss fell "
                       f"{previous[1]:.3f} → {train_loss:.3f}: the model is starting to memorise the training set")
            hint = "fewer epochs, a lower learning rate, more data, or early stopping (early_stopping_patience)"
            self.run.record(Warned(step=state.global_step, error=message, hint=hint))
            if self.echo:
                self.echo(f"warning: {message}; try {hint}")
