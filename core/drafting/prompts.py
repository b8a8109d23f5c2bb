"""The words and the reply shape a generator is given to draft question–answer pairs from a chunk.

This is the one place to edit them. The cache of drafts (drafting.py) is keyed by a hash of
everything here that reaches the generator, so a changed prompt drafts afresh instead of reusing
replies to the old one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SYSTEM = (
    "You write study questions from documents. Every question must be answerable from the passage alone, "
    "and every answer must be stated in the passage. You reply with JSON only."
)

DRAFT = """Passage from {source}:

<passage>
{text}
</passage>

Write {count} different questions about facts this passage states. For each one give:
- "question": a complete question a reader could ask without seeing the passage (name the subject; never write "the passage", "the text" or "according to");
- "answer": the short answer, a few words or one sentence, in the passage's own terms;
- "evidence": the sentence of the passage that states the answer, copied word for word.{paraphrase_rule}"""

PARAPHRASE_RULE = """
- "paraphrases": {count} other ways to ask the same question, each worded differently from the question and from each other, none giving away the answer."""

QUESTION_CHARS, ANSWER_CHARS, EVIDENCE_CHARS = 200, 200, 400
"""The longest strings the reply shape allows: a runaway generation ends instead of filling the context."""
MAX_REPLY_TOKENS = 4096
"""The most tokens a reply is given, whatever the counts asked for (a longer one is counted as not JSON)."""


def draft_messages(text: str, source: str, count: int, paraphrases: int) -> list[dict[str, str]]:
    """The chat that asks for `count` pairs (each with `paraphrases` rewrites) from the chunk `text`."""
    rule = PARAPHRASE_RULE.format(count=paraphrases) if paraphrases else ""
    user = DRAFT.format(source=source, text=text, count=count, paraphrase_rule=rule)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def draft_schema(count: int, paraphrases: int) -> dict[str, Any]:
    """The JSON schema of the reply: exactly `count` pairs, each with exactly `paraphrases` rewrites."""
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1, "maxLength": QUESTION_CHARS},
            "answer": {"type": "string", "minLength": 1, "maxLength": ANSWER_CHARS},
            "evidence": {"type": "string", "minLength": 1, "maxLength": EVIDENCE_CHARS},
        },
        "required": ["question", "answer", "evidence"],
        "additionalProperties": False,
    }
    if paraphrases:
        item["properties"]["paraphrases"] = {
            "type": "array", "minItems": paraphrases, "maxItems": paraphrases,
            "items": {"type": "string", "minLength": 1, "maxLength": QUESTION_CHARS},
        }
        item["required"].append("paraphrases")
    return {
        "type": "object",
        "properties": {"pairs": {"type": "array", "minItems": count, "maxItems": count, "items": item}},
        "required": ["pairs"],
        "additionalProperties": False,
    }


def reply_budget(count: int, paraphrases: int) -> int:
    """Tokens the longest reply the schema allows may take — a token per character, as a degenerate
    reply ("0.0.0.0…") takes — so a reply held to the schema is never cut off; at most MAX_REPLY_TOKENS."""
    per_pair = QUESTION_CHARS + ANSWER_CHARS + EVIDENCE_CHARS + paraphrases * QUESTION_CHARS + 48  # 48: keys and punctuation
    return min(MAX_REPLY_TOKENS, 32 + count * per_pair)


def prompt_version() -> str:
    """A short hash of the prompt and the reply shape: part of every cached draft's key."""
    words = json.dumps([SYSTEM, DRAFT, PARAPHRASE_RULE, QUESTION_CHARS, ANSWER_CHARS, EVIDENCE_CHARS])
    return hashlib.sha256(words.encode()).hexdigest()[:12]
