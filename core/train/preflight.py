"""What training needs beyond the data and the base, checked once: before a run is created (so a wrong
adapter or teacher leaves no run behind) and again in the training child (the files may have changed since)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..methods import method_spec
from ..models import ResolvedModel


def check_training_inputs(config: RunConfig, student: ResolvedModel, tokenizer: Any = None) -> Path | None:
    """Refuse, with a hint, an `adapter_from` that holds no adapter and a distillation teacher that cannot be
    found or speaks another vocabulary than `student` (whose tokenizer is loaded unless given); returns the
    teacher's folder for a distillation, else None."""
    if config.adapter_from:
        from .setup import adapter_folder

        adapter_folder(config.adapter_from)
    if method_spec(config.method).samples_answers:
        check_rewards(config)
    if method_spec(config.method).objective != "distill":
        return None
    from .distill import check_same_tokenizer, resolve_teacher
    from .setup import load_tokenizer

    teacher = resolve_teacher(config)
    check_same_tokenizer(student, teacher, tokenizer or load_tokenizer(student.path, config.trust_remote_code))
    return teacher


def check_rewards(config: RunConfig) -> None:
    """A GRPO run's rewards can be computed: a code reward is allowed (and its file loads, with its function), a json
    reward's schema reads and is a schema. A judge is asked only once training starts (it may be a server to start)."""
    from ..rewards import require_allowed, score_function, with_defaults

    rewards = with_defaults(config.rewards)
    require_allowed(rewards, config.allow_code)
    for reward in rewards:
        if reward.kind in ("code", "json"):
            score_function(reward)
