"""Scores of one answer against its reference: the measures of extractive question answering
(SQuAD's normalisation, exact match and token F1), and whether the reference is contained.

Normalising lower-cases, drops punctuation and the articles a/an/the, and collapses white
space, so "The Seven Lamps Bridge." matches "seven lamps bridge". "Contained" asks whether the
reference's words appear, in order, inside the answer: the measure that suits a chat model,
which answers in a sentence where the reference is a phrase.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text.lower())
    return " ".join(ARTICLES.sub(" ", text).split())


def exact_match(answer: str, reference: str) -> bool:
    """The answer is the reference, once both are normalised."""
    return normalize(answer) == normalize(reference)


def contains_reference(answer: str, reference: str) -> bool:
    """The reference's normalised words appear, in order and whole, inside the answer's."""
    wanted = normalize(reference)
    return bool(wanted) and f" {wanted} " in f" {normalize(answer)} "


def token_f1(answer: str, reference: str) -> float:
    """The harmonic mean of precision and recall over the normalised words both share."""
    got, want = normalize(answer).split(), normalize(reference).split()
    if not got or not want:
        return float(got == want)
    shared = sum((Counter(got) & Counter(want)).values())
    if not shared:
        return 0.0
    precision, recall = shared / len(got), shared / len(want)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class AnswerScore:
    """The lexical scores of one answer."""

    exact: bool
    contains: bool
    f1: float


def score_answer(answer: str, reference: str) -> AnswerScore:
    """Every lexical score of `answer` against `reference`."""
    return AnswerScore(exact_match(answer, reference), contains_reference(answer, reference), token_f1(answer, reference))
