"""Drafting question–answer pairs from chunks with a generator, one chunk at a time, each reply cached.

A chunk's reply is appended to `drafts.jsonl` in the output folder the moment it arrives (one
JSON line, flushed to disk), keyed by the chunk, the generator, the counts asked for and the
prompt's version. A rerun of the same command reads the cache first, so Ctrl-C, a crash or a
server that went away loses at most the chunk in flight; a torn last line is ignored.

A reply that is not the JSON asked for is counted against its chunk and not cached (a rerun
asks again); a generator that cannot answer at all stops the drafting with a GeneratorError
whose hint says the drafts so far are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GeneratorError, TuneforgeError
from ..progress import Progress, ProgressCallback
from .chunking import Chunk
from .generators import Generator, read_json_reply
from .prompts import draft_messages, draft_schema, prompt_version, reply_budget

DRAFTS_FILE = "drafts.jsonl"
NOT_JSON, NO_PAIRS = "reply not JSON", "reply without pairs"
"""Why a chunk's reply gave nothing: counted in the report, and asked again on a rerun."""
ACCEPTED, REJECTED = "accepted", "rejected"
"""A person's verdicts on a pair in review."""


class DraftingStopped(TuneforgeError):
    """Ctrl-C during drafting: what was drafted is kept for the next run."""

    exit_code = 130
    label = "stopped"


@dataclass
class Pair:
    """One drafted question with its answer, where it came from, and whether the gates (or a person) kept it.

    A fact is one drafted question; its paraphrases are more pairs of the same fact (variant 1, 2 …),
    so the eval split can keep a fact and all its wordings on one side.
    """

    id: str
    fact: str
    variant: int
    question: str
    answer: str
    evidence: str
    source: str
    chunk: int
    """The chunk's index in chunks.jsonl."""
    gate: str | None = None
    """Why the gates (pair_gates.py) dropped it, or None when it passed them."""
    review: str | None = None
    """A person's verdict, ACCEPTED or REJECTED, which outranks the gates; None when not reviewed."""
    edited: bool = False
    """A person rewrote its question or answer."""

    @property
    def kept(self) -> bool:
        """Whether it trains: accepted by a person, or passed by the gates and not rejected."""
        return self.review == ACCEPTED or (self.review is None and self.gate is None)

    @property
    def dropped(self) -> str | None:
        """Why it does not train, or None when it does."""
        if self.review == REJECTED:
            return "rejected in review"
        return None if self.kept else self.gate

    def messages(self) -> list[dict[str, str]]:
        """The pair as the chat it trains."""
        return [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer}]

    def record(self) -> dict[str, Any]:
        """Its line in pairs.jsonl: the messages, where it came from, and what became of it."""
        return {"id": self.id, "fact": self.fact, "variant": self.variant, "messages": self.messages(),
                "source": self.source, "chunk": self.chunk, "evidence": self.evidence, "kept": self.kept,
                "dropped": self.dropped, "gate": self.gate, "review": self.review, "edited": self.edited}

    def training_record(self) -> dict[str, Any]:
        """Its line in train.jsonl or eval.jsonl: a messages record `tuneforge train --data` reads as it is."""
        return {"messages": self.messages(), "source": self.source, "fact": self.fact}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Pair:
        """A pair read back from its pairs.jsonl line."""
        user, assistant = record["messages"][0]["content"], record["messages"][1]["content"]
        return cls(record["id"], record["fact"], record["variant"], user, assistant, record["evidence"], record["source"],
                   record["chunk"], record.get("gate"), record.get("review"), record.get("edited", False))

    def apply_review(self, review: dict[str, Any]) -> None:
        """A person's verdict and edits: {"review": ACCEPTED or REJECTED, "question"?: …, "answer"?: …}."""
        for name in ("question", "answer"):
            text = review.get(name)
            if isinstance(text, str) and text.strip() and text.strip() != getattr(self, name):
                setattr(self, name, text.strip())
                self.edited = True
        if review.get("review") in (ACCEPTED, REJECTED):
            self.review = review["review"]


@dataclass
class Drafted:
    """What drafting gave: the pairs in chunk order, and the chunks whose replies gave none, by why."""

    pairs: list[Pair] = field(default_factory=list)
    failed: Counter[str] = field(default_factory=Counter)
    from_cache: int = 0
    asked: int = 0
    """Chunks sent to the generator in this run."""
    fresh_pairs: int = 0
    """Pairs those chunks gave."""
    seconds: float = 0.0
    """Time spent waiting for the generator in this run."""


class DraftCache:
    """drafts.jsonl: each chunk's parsed reply, appended and flushed as it arrives."""

    def __init__(self, folder: Path, generator: str, count: int, paraphrases: int) -> None:
        self.path = folder / DRAFTS_FILE
        self._salt = json.dumps([generator, count, paraphrases, prompt_version()])
        self._replies: dict[str, list[dict[str, Any]]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._replies[entry["key"]] = entry["pairs"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash, or from an older version: that chunk is drafted again

    def key(self, chunk: Chunk) -> str:
        """The chunk's key under this generator, these counts and this prompt."""
        return hashlib.sha256(f"{self._salt}\n{chunk.source}\n{chunk.text}".encode()).hexdigest()

    def get(self, chunk: Chunk) -> list[dict[str, Any]] | None:
        """The cached items of the chunk's reply, or None when it was never drafted this way."""
        return self._replies.get(self.key(chunk))

    def put(self, chunk: Chunk, items: list[dict[str, Any]]) -> None:
        """Append the chunk's items and flush them to disk before returning."""
        key = self.key(chunk)
        self._replies[key] = items
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"key": key, "source": chunk.source, "pairs": items}, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def parse_reply(text: str) -> list[dict[str, Any]]:
    """The items of a reply: each a dict with string `question`, `answer`, `evidence` and a list of
    string `paraphrases` (missing fields are empty: the gates drop those). ValueError says why a
    reply gives nothing (NOT_JSON, NO_PAIRS)."""
    try:
        reply = read_json_reply(text)
    except ValueError:
        raise ValueError(NOT_JSON) from None
    pairs = reply.get("pairs") if isinstance(reply, dict) else reply if isinstance(reply, list) else None
    if not isinstance(pairs, list) or not pairs:
        raise ValueError(NO_PAIRS)
    items = []
    for item in pairs:
        item = item if isinstance(item, dict) else {}
        rewrites = item.get("paraphrases")
        items.append({
            "question": _string(item.get("question")),
            "answer": _string(item.get("answer")),
            "evidence": _string(item.get("evidence")),
            "paraphrases": [_string(p) for p in rewrites] if isinstance(rewrites, list) else [],
        })
    return items


def _string(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def pairs_of(chunk: Chunk, index: int, items: list[dict[str, Any]], paraphrases: int) -> list[Pair]:
    """A chunk's items as pairs: each item a fact (variant 0), its first `paraphrases` rewrites more variants."""
    fact_root = hashlib.sha256(f"{chunk.source}\n{chunk.text}".encode()).hexdigest()[:10]
    pairs = []
    for number, item in enumerate(items, 1):
        fact = f"{fact_root}-{number}"
        wordings = [item["question"], *item["paraphrases"][:paraphrases]]
        for variant, question in enumerate(wordings):
            pairs.append(Pair(f"{fact}-{variant}", fact, variant, question, item["answer"], item["evidence"], chunk.source, index))
    return pairs


def draft_pairs(chunks: list[Chunk], generator: Generator, cache: DraftCache, count: int, paraphrases: int,
                on_progress: ProgressCallback | None = None) -> Drafted:
    """Draft `count` pairs (with `paraphrases` rewrites each) from every chunk, cached ones first read back."""
    drafted = Drafted()
    progress = Progress("drafting", len(chunks))
    try:
        for index, chunk in enumerate(chunks):
            items = cache.get(chunk)
            if items is not None:
                drafted.from_cache += 1
                progress.skipped += 1
                drafted.pairs += pairs_of(chunk, index, items, paraphrases)
            else:
                fresh = pairs_of(chunk, index, _ask(generator, chunk, cache, drafted, count, paraphrases), paraphrases)
                drafted.fresh_pairs += len(fresh)
                drafted.pairs += fresh
            progress.done, progress.detail = index + 1, f"{len(drafted.pairs)} pairs"
            if on_progress:
                on_progress(progress)  # the app stops drafting by raising KeyboardInterrupt here
    except KeyboardInterrupt:
        raise DraftingStopped(f"stopped after {progress.done} of {len(chunks)} chunks; their drafts are kept in {cache.path}",
                              "run the same command again to continue where it stopped") from None
    return drafted


def _ask(generator: Generator, chunk: Chunk, cache: DraftCache, drafted: Drafted, count: int, paraphrases: int) -> list[dict[str, Any]]:
    """The generator's items for one chunk, cached when the reply parses; a junk reply counts in `drafted.failed`."""
    drafted.asked += 1
    asked_at = time.perf_counter()
    try:
        text = generator.reply(draft_messages(chunk.text, chunk.source, count, paraphrases), draft_schema(count, paraphrases),
                               reply_budget(count, paraphrases))
    except GeneratorError as exc:
        raise GeneratorError(exc.message, f"{exc.hint}; drafts so far are kept") from None
    finally:
        drafted.seconds += time.perf_counter() - asked_at
    try:
        items = parse_reply(text)
    except ValueError as exc:
        drafted.failed[str(exc)] += 1
        return []
    cache.put(chunk, items)
    return items

