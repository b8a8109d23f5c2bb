"""Knowledge distillation: a student learns a teacher's token distributions (Hinton et al., 2015).

The loss on each trained (answer) token is `weight × T² × KL(teacher_T ‖ student_T) +
(1 − weight) × cross-entropy`, with both distributions softened by temperature T. With
`distill_generate` the answers themselves are first replaced by the teacher's own greedy
answers (sequence-level distillation, Kim & Rush, 2016). With `distill_general` the student also
learns the teacher's answers to tuneforge's general chat prompts (replay.py), so it keeps the teacher's
general chat (greetings, facts, how-tos, ending its turn) while it learns a narrow dataset. Teacher and
student must share a tokenizer, or the two distributions would be over different tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trl import SFTTrainer

from ..config import RunConfig
from ..data.records import Example
from ..errors import ConfigError
from ..models import ResolvedModel, resolve_model
from ..replies import generate_replies
from ..runs import RunDir
from .setup import load_tokenizer
from .speed import trained_positions

TEACHER_ANSWER_TOKENS = 256


def resolve_teacher(config: RunConfig) -> Path:
    """The teacher's model folder: a trained run's merged weights, or any model reference."""
    reference = config.teacher or ""
    path = Path(reference).expanduser()
    if (path / "config.yaml").is_file():
        run = RunDir(path.resolve())
        if (run.merged / "config.json").is_file():
            return run.merged
        raise ConfigError(f"{reference}: this run has no merged weights to teach with",
                          f"merge it first: tuneforge merge {reference}")
    return resolve_model(reference, config.trust_remote_code, config.allow_pickle).path


def check_same_tokenizer(student: ResolvedModel, teacher_path: Path, student_tokenizer: Any) -> Any:
    """The teacher's tokenizer, after checking it maps every token to the same id as the student's."""
    teacher_tokenizer = load_tokenizer(teacher_path)
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ConfigError(
            f"teacher {teacher_path} and student {student.name} use different tokenizers",
            "distillation compares token distributions: pick a teacher of the same family (e.g. a larger Qwen2.5 for a Qwen2.5 student)",
        )
    return teacher_tokenizer


def load_teacher(path: Path, dtype: Any, device: Any, trust_remote_code: bool = False) -> Any:
    """The teacher, frozen, in eval mode on the student's device."""
    from ..language_model import load_language_model

    teacher = load_language_model(path, dtype=dtype, trust_remote_code=trust_remote_code).to(device)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def teacher_answers(examples: list[Example], teacher: Any, tokenizer: Any) -> list[Example]:
    """The examples with each final answer replaced by the teacher's greedy answer to the same prompt."""
    answerable = [bool(e.messages) and e.messages[-1]["role"] == "assistant" for e in examples]
    prompts = [e.messages[:-1] for e, ok in zip(examples, answerable, strict=True) if ok]
    replies = iter(generate_replies(teacher, tokenizer, prompts, TEACHER_ANSWER_TOKENS))
    answered = []
    for example, ok in zip(examples, answerable, strict=True):
        if ok:
            text = next(replies).text
            example = Example(example.source, example.messages[:-1] + [{"role": "assistant", "content": text or example.messages[-1]["content"]}])
        answered.append(example)
    return answered


def distillation_terms(student_logits: Any, teacher_logits: Any, targets: Any, temperature: float) -> tuple[Any, Any, Any]:
    """(KL × T², cross-entropy, token accuracy) over the trained targets; each logit position predicts the target at
    the same index (targets of -100 are not trained)."""
    import torch
    import torch.nn.functional as F

    mask = targets != -100
    student, teacher, targets = student_logits.float()[mask], teacher_logits.float()[mask], targets[mask]
    if targets.numel() == 0:
        zero = student_logits.sum() * 0.0
        return zero, zero, torch.tensor(0.0)
    kl = F.kl_div(F.log_softmax(student / temperature, -1), F.log_softmax(teacher / temperature, -1),
                  log_target=True, reduction="batchmean") * temperature**2
    cross_entropy = F.cross_entropy(student, targets)
    accuracy = (student.argmax(-1) == targets).float().mean()
    return kl, cross_entropy, accuracy


class DistillTrainer(SFTTrainer):
    """TRL's SFT trainer with the distillation loss; logs `kl` and `mean_token_accuracy` like SFT does."""

    def __init__(self, *args: Any, teacher: Any, temperature: float, weight: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False  # the loss is a batch mean: let the trainer scale it for accumulation
        self.teacher = teacher
        self.temperature = temperature
        self.weight = weight

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        import torch

        mode = "train" if model.training else "eval"
        labels = inputs["labels"]
        forward = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "position_ids")}
        # Student and teacher project the trained positions only: a prompt's logits over the vocabulary would cost
        # memory and time for a loss that reads the answers alone.
        positions = trained_positions(labels)
        outputs = model(**forward, use_cache=False, logits_to_keep=positions)
        with torch.no_grad():
            teacher_logits = self.teacher(**forward, use_cache=False, logits_to_keep=positions).logits
        targets = labels[:, 1:][:, positions]
        kl, cross_entropy, accuracy = distillation_terms(outputs.logits, teacher_logits, targets, self.temperature)
        loss = self.weight * kl + (1 - self.weight) * cross_entropy
        self._metrics[mode]["kl"].append(kl.item())
        self._metrics[mode]["mean_token_accuracy"].append(accuracy.item())
        return (loss, outputs) if return_outputs else loss
