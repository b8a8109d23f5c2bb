"""Guards against the classic silent failures of fine-tuning.

No learning: a run whose trained parameters get no gradient at the first step stops with an error
that names them, instead of training for hours and saving an adapter that changes nothing.
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

from ..errors import ModelError
from ..events import Warned
from ..runs import RunDir

CUT_OFF_HINT = ("they do not take part in the loss: check lora_targets / freeze_patterns (an adapter on a vision tower "
                "or an unused head learns nothing from text), and report it if the settings are tuneforge's own")
NO_GRAPH = "does not require grad and does not have a grad_fn"
"""What torch says when no trained parameter takes part in the loss at all (GradientGuard sees the partial case)."""
MOST_PARTS_NAMED = 8
"""The most parts without a gradient an error names."""
GENERAL_TEXT = "general-text.txt"
PROBE_BLOCK_TOKENS = 128
"""Length of each scored block: short enough for any model's context and a CPU's memory."""
PROBE_SLICE_TOKENS = 16
"""Positions whose loss is computed at once (see general_perplexity)."""


def general_text() -> list[str]:
    """The shipped general-knowledge paragraphs the forgetting probe scores."""
    text = (resources.files("tuneforge.core") / "datasets" / GENERAL_TEXT).read_text(encoding="utf-8")
    return [paragraph.strip() for paragraph in text.split("\n\n") if paragraph.strip()]


def general_perplexity(model: Any, tokenizer: Any) -> float:
    """Perplexity of `model` on the general-text set (token-weighted over all blocks).

    The loss is summed over slices of PROBE_SLICE_TOKENS positions: a 262k vocabulary's logits for a
    block are 134 MB in fp32, and the usual loss (a shifted copy, then a log-softmax as large) would
    hold three times that, after training, on top of the trainer's memory. A prompt-tuned model's
    logits begin with its virtual tokens, which are skipped, so it is scored with its learned prompt.
    """
    import torch
    import torch.nn.functional as F

    device = next(p.device for p in model.parameters())
    total_loss, total_tokens = 0.0, 0
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for paragraph in general_text():
            ids = tokenizer(paragraph, add_special_tokens=True)["input_ids"][:PROBE_BLOCK_TOKENS]
            batch = torch.tensor([ids], device=device)
            logits = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits[0]
            logits = logits[logits.shape[0] - len(ids):]  # after any virtual tokens
            targets = batch[0, 1:]
            for start in range(0, len(ids) - 1, PROBE_SLICE_TOKENS):
                end = min(start + PROBE_SLICE_TOKENS, len(ids) - 1)
                total_loss += float(F.cross_entropy(logits[start:end].float(), targets[start:end], reduction="sum"))
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


def parameter_group(name: str) -> str:
    """The part of the model a trainable parameter belongs to, as a person reads it: the numbered layer
    (`model.layers.3` for every adapter matrix in it), else the module (`lm_head`, `model.embed_tokens`)."""
    parts = name.removeprefix("base_model.model.").split(".")
    for index, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:index + 1])
    return ".".join(parts[:-1]) or parts[0]


class GradientGuard(TrainerCallback):
    """Before the first optimizer step, every part of the model that trains must have a non-zero gradient.

    A part without one is cut off from the loss (an adapter on a vision tower that text never passes
    through, a head the loss does not use, a graph cut by checkpointing a frozen input): the run would
    train for its whole length and save weights that change nothing, so it stops with a ModelError that
    names those parts. Parts are whole layers, so a LoRA matrix that starts at zero (B) or an expert that
    no token reached in the first batch does not count as cut off. Not for sharded (FSDP) training, where
    each process holds only its shard's gradients. With `silent_steps`, a step whose gradient is zero everywhere
    is not judged and the next one is (GRPO: when every answer of a group scores the same there is nothing to learn
    from that step)."""

    def __init__(self, silent_steps: bool = False) -> None:
        self.checked = False
        self.silent_steps = silent_steps

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.checked or model is None:
            return
        trained: dict[str, bool] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                group = parameter_group(name)
                has_gradient = parameter.grad is not None and bool(parameter.grad.detach().count_nonzero())
                trained[group] = trained.get(group, False) or has_gradient
        missing = [group for group, reached in trained.items() if not reached]
        if self.silent_steps and len(missing) == len(trained):
            return
        self.checked = True
        if missing:
            named = ", ".join(missing[:MOST_PARTS_NAMED]) + (f" and {len(missing) - MOST_PARTS_NAMED} more" if len(missing) > MOST_PARTS_NAMED else "")
            raise ModelError(
                f"{len(missing)} of the {len(trained)} trained parts of the model got no gradient at the first step: {named}; "
                "training them would change nothing",
                CUT_OFF_HINT,
            )
