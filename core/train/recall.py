"""Stop a small dataset's training once its answers are learned.

An answer is recalled when, fed the conversation up to each of its tokens, the model's most
likely next token is that token, at every position of the answer (teacher forcing). That is
exactly the condition for greedy decoding to reproduce the answer word for word, and it costs
one forward pass per example, no generation. Checked at the end of every epoch on up to
RECALL_SAMPLE training examples; training stops once all of them are recalled. Training past
that point only moves the weights further from the base (bench/defaults.py: forgetting).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from transformers import TrainerCallback

from ..data.prepare import IGNORE_INDEX, TokenizedExample
from ..events import Recalled
from ..runs import RunDir

RECALL_SAMPLE = 256
"""The most training examples checked; evenly spread, so a larger small dataset costs the same."""
RECALL_BATCH = 8
RECALL_PATIENCE = 3
"""Checks in a row without a new best count (once any answer is recalled) after which training stops anyway: an
answer that flips between two near-equal words would otherwise keep a run going for all 30 epochs (the demo did,
at 56 of 59)."""


def recall_sample(examples: Sequence[TokenizedExample]) -> list[TokenizedExample]:
    """Up to RECALL_SAMPLE of `examples`, spread evenly over them (the same ones at every check)."""
    if len(examples) <= RECALL_SAMPLE:
        return list(examples)
    stride = len(examples) / RECALL_SAMPLE
    return [examples[int(i * stride)] for i in range(RECALL_SAMPLE)]


def recalled(model: Any, examples: Sequence[TokenizedExample]) -> int:
    """How many of `examples` have every trained (answer) token as the model's top prediction."""
    import torch

    device = next(p.device for p in model.parameters())
    was_training = model.training
    model.eval()
    count = 0
    with torch.inference_mode():
        for start in range(0, len(examples), RECALL_BATCH):
            batch = examples[start:start + RECALL_BATCH]
            width = max(len(e.input_ids) for e in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long, device=device)
            labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long, device=device)
            mask = torch.zeros((len(batch), width), dtype=torch.long, device=device)
            for row, example in enumerate(batch):  # right padding: positions keep their order and meaning
                ids[row, :len(example.input_ids)] = torch.tensor(example.input_ids)
                labels[row, :len(example.labels)] = torch.tensor(example.labels)
                mask[row, :len(example.input_ids)] = 1
            logits = model(input_ids=ids, attention_mask=mask).logits
            logits = logits[:, logits.shape[1] - width:]  # after any virtual tokens (prompt tuning)
            predicted, targets = logits[:, :-1].argmax(-1), labels[:, 1:]
            trained = targets != IGNORE_INDEX
            right = (predicted == targets) | ~trained
            count += int((right.all(dim=1) & trained.any(dim=1)).sum())
    model.train(was_training)
    return count


class RecallStop(TrainerCallback):
    """At each epoch's end, record how many checked training answers are recalled; stop when all are."""

    def __init__(self, run: RunDir, examples: Sequence[TokenizedExample], echo: Callable[[str], None] | None) -> None:
        self.run = run
        self.sample = recall_sample(examples)
        self.echo = echo
        self.best = -1
        self.since_best = 0

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None or not self.sample:
            return
        count = recalled(model, self.sample)
        self.run.record(Recalled(step=state.global_step, recalled=count, checked=len(self.sample)))
        if self.echo:
            self.echo(f"recall after epoch {round(state.epoch or 0)}: {count}/{len(self.sample)} training answers word for word")
        # Patience counts from the first answer recalled: before that a slow start is still learning.
        self.best, self.since_best = (count, 0) if count > self.best or count == 0 else (self.best, self.since_best + 1)
        # Every process holds the same weights and checks the same examples, so all stop together.
        if count == len(self.sample) or self.since_best >= RECALL_PATIENCE:
            control.should_training_stop = True
            control.should_save = True
            if self.echo:
                self.echo("every checked training answer is recalled: training stops here" if count == len(self.sample) else
                          f"recall has not passed {self.best}/{len(self.sample)} in {RECALL_PATIENCE} epochs: training stops here")
