"""Forgetting as a person sees it: everyday questions the base model answered right, asked again after training.

tuneforge ships about a hundred short everyday questions with the words a right answer contains
(datasets/general-questions.json: geography, science, arithmetic, units, language, everyday facts,
history, and short instructions such as "answer in one word"). The base model answers them before
training (cached per base model, replies.py) and the tuned model after; the run reports how many of
the questions the base answered right the tuned model still answers right, and lists the ones it
lost with what it says now. Perplexity on general text (train/guards.py) stays as a second figure:
a fine-tune can move it little while it turns "Paris" into "Strasbourg".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .answer_scores import contains_reference
from .atomic import atomic_write_text

GENERAL_QUESTIONS = "general-questions.json"
ANSWER_TOKENS = 48
"""Every question asks for a word or a sentence; an answer still going after this many tokens is cut."""
RESULT_FILE = "general-answers.json"
"""RUN_DIR/general-answers.json: every question, the base's and the tuned model's answer, right or not."""


def kept_summary(kept: int, known: int) -> str:
    """"kept 19 of 20 everyday answers the base got right"."""
    return f"kept {kept} of {known} everyday answers the base got right"


def forgetting_line(result: Any) -> str | None:
    """What a finished run's TrainResult says of forgetting, in words: the everyday answers kept first, then the
    general-text perplexity (None when neither was measured)."""
    parts = []
    if result.general_known is not None and result.general_kept is not None:
        parts.append(kept_summary(result.general_kept, result.general_known))
    before, after = result.general_perplexity_before, result.general_perplexity_after
    if before and after is not None:
        parts.append(f"general-text perplexity {before:.2f} → {after:.2f} ({after / before - 1:+.0%})")
    return "forgetting: " + "; ".join(parts) if parts else None


@dataclass(frozen=True)
class GeneralQuestion:
    """One everyday question and what a right answer contains."""

    question: str
    expect: tuple[str, ...]
    """A right answer contains one of these (normalised, whole words)."""
    max_words: int | None = None
    """For a question that asks for a short answer: a longer one is wrong."""
    topic: str = ""

    def is_right(self, answer: str) -> bool:
        """Whether `answer` contains an expected word and keeps to the asked length."""
        if self.max_words is not None and len(answer.split()) > self.max_words:
            return False
        return any(contains_reference(answer, expected) for expected in self.expect)


@cache
def general_questions() -> tuple[GeneralQuestion, ...]:
    """The shipped everyday questions, in file order (read once: a run and an evaluation ask for them several times)."""
    text = (resources.files("tuneforge.core") / "datasets" / GENERAL_QUESTIONS).read_text(encoding="utf-8")
    return tuple(GeneralQuestion(q["question"], tuple(q["expect"]), q.get("max_words"), q.get("topic", ""))
            for q in json.loads(text)["questions"])


def conversations(questions: Sequence[GeneralQuestion]) -> list[list[dict[str, str]]]:
    """Each question as a one-turn conversation, as the models are asked it."""
    return [[{"role": "user", "content": q.question}] for q in questions]


@dataclass
class LostAnswer:
    """A question the base answered right and the tuned model no longer does."""

    question: str
    expect: list[str]
    before: str
    after: str


@dataclass
class KeptAnswers:
    """How many everyday answers survived training."""

    asked: int
    known: int
    """Questions the base model answered right."""
    kept: int
    """Of those, the ones the tuned model still answers right."""
    lost: list[LostAnswer] = field(default_factory=list)
    gained: int = 0
    """Questions the base got wrong and the tuned model gets right."""

    @property
    def share(self) -> float | None:
        """The share of the base's right answers kept (None when the base knew none)."""
        return self.kept / self.known if self.known else None

    def summary(self) -> str:
        """The figures in words, as the CLI and the app say them (kept_summary)."""
        return kept_summary(self.kept, self.known)


def compare_answers(questions: Sequence[GeneralQuestion], before: Sequence[str], after: Sequence[str]) -> KeptAnswers:
    """Score the base's answers (`before`) and the tuned model's (`after`) to the same questions."""
    right_before = [q.is_right(a) for q, a in zip(questions, before, strict=True)]
    right_after = [q.is_right(a) for q, a in zip(questions, after, strict=True)]
    lost = [LostAnswer(q.question, list(q.expect), b, a)
            for q, b, a, was, now in zip(questions, before, after, right_before, right_after, strict=True) if was and not now]
    return KeptAnswers(asked=len(questions), known=sum(right_before),
                       kept=sum(was and now for was, now in zip(right_before, right_after, strict=True)), lost=lost,
                       gained=sum(now and not was for was, now in zip(right_before, right_after, strict=True)))


def base_answers(model: Any, tokenizer: Any, model_path: Path) -> list[str]:
    """The base model's answers to every everyday question (cached per base model, see replies.py)."""
    from .replies import cached_base_replies

    return [r.text for r in cached_base_replies(model, tokenizer, model_path, conversations(general_questions()), ANSWER_TOKENS)]


def model_answers(model: Any, tokenizer: Any) -> list[str]:
    """A (tuned) model's answers to every everyday question, never cached."""
    from .replies import generate_replies

    return [r.text for r in generate_replies(model, tokenizer, conversations(general_questions()), ANSWER_TOKENS)]


def write_answers(path: Path, before: Sequence[str], after: Sequence[str], kept: KeptAnswers) -> None:
    """RESULT_FILE: the figures, the lost questions, then every question with both answers."""
    questions = general_questions()
    record = {
        "asked": kept.asked, "known": kept.known, "kept": kept.kept, "gained": kept.gained,
        "lost": [asdict(item) for item in kept.lost],
        "questions": [{"question": q.question, "expect": list(q.expect), "topic": q.topic, "before": b, "after": a,
                       "right_before": q.is_right(b), "right_after": q.is_right(a)}
                      for q, b, a in zip(questions, before, after, strict=True)],
    }
    atomic_write_text(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def recorded_base_answers(path: Path) -> list[str] | None:
    """The base model's answers RESULT_FILE recorded when its run trained, or None when it has none for today's
    questions (no probe ran, or the questions have changed since)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))["questions"]
        if [item["question"] for item in record] != [q.question for q in general_questions()]:
            return None
        return [str(item["before"]) for item in record]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_answers(path: Path) -> KeptAnswers | None:
    """The figures and lost questions RESULT_FILE holds, or None when the run has none."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        return KeptAnswers(record["asked"], record["known"], record["kept"],
                           [LostAnswer(**item) for item in record["lost"]], record.get("gained", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None
