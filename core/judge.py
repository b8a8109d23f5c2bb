"""A judge model grades an answer against its reference: correct or not, and why.

The judge is any generator `data prepare` drafts with (a .gguf file, `ollama:NAME`, an
OpenAI-compatible URL), held to a small JSON schema. The prompt asks about meaning, not
wording: a paraphrase of the reference is correct, an answer that adds a wrong fact is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .drafting.generators import Generator, read_json_reply

JUDGE_SYSTEM = (
    "You grade answers to questions. You are given a question, the reference answer, and a candidate answer. "
    "The candidate is correct when it states what the reference states, in any wording; it is incorrect when it "
    "contradicts the reference, leaves out what the question asks for, or adds a claim the reference contradicts. "
    "Reply in JSON with `correct` (true or false) and `reason` (one short sentence)."
)
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"correct": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 200}},
    "required": ["correct", "reason"],
}
JUDGE_REPLY_TOKENS = 256
"""Room for the verdict and its sentence (the schema bounds the reason to 200 characters)."""


@dataclass(frozen=True)
class Verdict:
    """The judge's grade of one answer; `correct` is None when its reply could not be read."""

    correct: bool | None
    reason: str


def judge_answer(judge: Generator, question: str, reference: str, answer: str) -> Verdict:
    """Ask `judge` whether `answer` says what `reference` says (a GeneratorError if it cannot answer at all)."""
    prompt = f"Question: {question}\n\nReference answer: {reference}\n\nCandidate answer: {answer or '(no answer)'}"
    text = judge.reply([{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}],
                       JUDGE_SCHEMA, JUDGE_REPLY_TOKENS)
    return parse_verdict(text)


def parse_verdict(text: str) -> Verdict:
    """The verdict in a judge's reply; an unreadable reply is a Verdict with `correct` None, saying so."""
    try:
        reply = read_json_reply(text)
    except ValueError:
        return Verdict(None, f"the judge's reply is not JSON: {text[:80]!r}")
    if not isinstance(reply, dict) or not isinstance(reply.get("correct"), bool):
        return Verdict(None, f"the judge's reply has no true/false `correct`: {text[:80]!r}")
    return Verdict(reply["correct"], str(reply.get("reason", "")).strip())
