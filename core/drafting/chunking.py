"""Cutting documents' passages into chunks of at most T tokens of the chosen model, on paragraph
or sentence boundaries, each chunk starting with a little of the one before it.

A chunk is what a generator drafts questions from and what continued pre-training trains on,
so it keeps its passage's source (`guide.pdf#page=2`). Chunks never cross passages: a PDF
page boundary is a boundary. Only a sentence longer than a chunk is cut inside, by tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .documents import Passage

SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=\S)")
DEFAULT_CHUNK_TOKENS = 512
MIN_CHUNK_TOKENS = 16
OVERLAP_SHARE = 0.15
"""How much of a chunk's length may repeat the end of the chunk before it (whole sentences only)."""


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, small enough for one prompt, with where it came from."""

    text: str
    source: str
    tokens: int


def chunk_passages(passages: list[Passage], tokenizer: Any, chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> list[Chunk]:
    """Every passage cut into chunks of at most `chunk_tokens` tokens (counted by `tokenizer`)."""
    assert chunk_tokens >= MIN_CHUNK_TOKENS, chunk_tokens  # callers check it with a message for the person
    return [chunk for passage in passages for chunk in _chunks(passage, tokenizer, chunk_tokens)]


def _chunks(passage: Passage, tokenizer: Any, limit: int) -> list[Chunk]:
    units = [(text, count) for text, count in _units(passage.text, tokenizer, limit)]
    chunks: list[Chunk] = []
    current: list[tuple[str, int]] = []
    for unit in units:
        if current and _size(current + [unit]) > limit:
            chunks.append(_chunk(current, passage.source))
            current = _overlap(current, limit - unit[1] - 2, limit, tokenizer)
        current.append(unit)
    if current:
        chunks.append(_chunk(current, passage.source))
    return chunks


def _units(text: str, tokenizer: Any, limit: int) -> list[tuple[str, int]]:
    """Paragraphs that fit a chunk; longer ones as their sentences; a sentence still too long, cut by tokens."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    units: list[tuple[str, int]] = []
    for paragraph, count in zip(paragraphs, _counts(paragraphs, tokenizer), strict=True):
        if count <= limit:
            units.append((paragraph, count))
            continue
        sentences = [s for s in SENTENCE_END.split(paragraph) if s.strip()]
        for sentence, sentence_count in zip(sentences, _counts(sentences, tokenizer), strict=True):
            units += [(sentence, sentence_count)] if sentence_count <= limit else _token_pieces(sentence, tokenizer, limit)
    return units


def _token_pieces(text: str, tokenizer: Any, limit: int) -> list[tuple[str, int]]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [(tokenizer.decode(ids[i:i + limit]).strip(), len(ids[i:i + limit])) for i in range(0, len(ids), limit)]


def _counts(texts: list[str], tokenizer: Any) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []


def _size(units: list[tuple[str, int]]) -> int:
    """Tokens of the units joined, counting two for each separator: joining can only merge tokens
    at the seams, so the real count stays within this."""
    return sum(count for _, count in units) + 2 * (len(units) - 1)


def _overlap(previous: list[tuple[str, int]], room: int, limit: int, tokenizer: Any) -> list[tuple[str, int]]:
    """The last sentences of the previous chunk, repeated at the start of the next: about OVERLAP_SHARE
    of a chunk (at least its last sentence, when that is under a quarter of one), within the room the
    next unit leaves, and never the whole chunk."""
    sentences = [s for s in SENTENCE_END.split(previous[-1][0]) if s.strip()]
    if len(previous) == 1:
        sentences = sentences[1:]  # a chunk of one paragraph: keep its first sentence out of the overlap
    counted = list(zip(sentences, _counts(sentences, tokenizer), strict=True))
    last = counted[-1][1] if counted else 0
    budget = min(room, max(int(OVERLAP_SHARE * limit), last if last <= limit // 4 else 0))
    kept: list[tuple[str, int]] = []
    for sentence, count in reversed(counted):
        if _size([(sentence, count), *kept]) > budget:
            break
        kept.insert(0, (sentence, count))
    return [(" ".join(text for text, _ in kept), _size(kept))] if kept else []


def _chunk(units: list[tuple[str, int]], source: str) -> Chunk:
    return Chunk("\n\n".join(text for text, _ in units), source, _size(units))
