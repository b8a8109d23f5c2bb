"""How a training run ended, in a module light enough for a parent process that only waits for the child."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TuneforgeError


class TrainingStopped(TuneforgeError):
    """Training was stopped on request (Ctrl-C, SIGTERM, Stop in the UI) after a checkpoint."""

    exit_code = 130
    label = "stopped"  # asked for, not an error


@dataclass
class TrainResult:
    """The figures a finished run reports in its `finished` event."""

    steps: int
    final_loss: float
    eval_loss: float | None
    runtime_s: float
    tokens_per_second: float
    trainable_params: int
    total_params: int
    peak_memory_gb: float
    planned_peak_gb: float | None = None
    """The memory plan's peak for this run (None when the model's dimensions are unknown)."""
    method: str = ""
    eval_accuracy: float | None = None
    """Held-out accuracy: next-token accuracy on answers (SFT, distill) or chosen-over-rejected (dpo, orpo, reward)."""
    accuracy_of: str | None = None
    general_perplexity_before: float | None = None
    """Perplexity on general text before training, and after (the forgetting probe); None when not measured."""
    general_perplexity_after: float | None = None
    general_known: int | None = None
    """Everyday questions the base answered right (general_answers.py); None when not asked."""
    general_kept: int | None = None
    """Of those, the ones the tuned model still answers right."""
    replay_examples: int = 0
    """The base's own general answers that trained beside the data (replay)."""


class TrainingFailed(TuneforgeError):
    """Training failed in the child process; message and hint come from its `failed` event or its log."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code
