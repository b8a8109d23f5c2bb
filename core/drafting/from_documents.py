"""`tuneforge data prepare`: a training folder built from documents, every record traceable to its source.

Documents are extracted (documents.py) and cut into chunks by the chosen model's tokenizer
(chunking.py). The output folder receives:

- `chunks.jsonl`: the text and source (`guide.pdf#page=2`) of each chunk;
- with a generator, `drafts.jsonl` (each chunk's reply, the cache a rerun continues from) and
  `pairs.jsonl`: every drafted pair with its messages, source, evidence, and whether it is kept or
  why it was dropped (pair_gates.py), or what a person decided in review (`reviews.json`);
- `train.jsonl` and `eval.jsonl`: messages records (the kept pairs) that `tuneforge train --data`
  reads as they are, the eval side held out by fact — a question and its paraphrases stay on one
  side, so eval measures recall of facts, not of wordings. Without a generator the chunks
  themselves are the records, as `text` for continued pre-training: that path needs nothing but
  the documents;
- `report.json`: what was read, skipped, drafted, dropped by reason and written, and how long it took.

Every file is written whole or not at all (the drafts cache is appended a flushed line at a time).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import DataError
from ..progress import ProgressCallback
from .chunking import DEFAULT_CHUNK_TOKENS, MIN_CHUNK_TOKENS, Chunk, chunk_passages
from .documents import extract
from .drafts import ACCEPTED, REJECTED, DraftCache, Pair, draft_pairs

CHUNKS_FILE, PAIRS_FILE, REVIEWS_FILE = "chunks.jsonl", "pairs.jsonl", "reviews.json"
TRAIN_FILE, EVAL_FILE, REPORT_FILE = "train.jsonl", "eval.jsonl", "report.json"
MIN_ITEMS_FOR_EVAL = 10
"""Below this many chunks (or facts) nothing is held out: each is needed for training."""
TEXT_RECORDS, PAIR_RECORDS = "text (continued pre-training)", "messages (question-answer pairs)"


@dataclass
class PrepareReport:
    """report.json: what a `data prepare` run read, skipped, drafted and wrote."""

    sources: list[str]
    model: str
    chunk_tokens: int
    eval_share: float = 0.1
    seed: int = 42
    documents: int = 0
    pages: int = 0
    chunks: int = 0
    skipped: list[str] = field(default_factory=list)
    records: str = TEXT_RECORDS
    """What the records in train.jsonl and eval.jsonl are."""
    generator: str | None = None
    questions_per_chunk: int = 0
    paraphrases: int = 0
    chunks_drafted: int = 0
    """Chunks the generator was asked about in this run (the rest came from the drafts cache)."""
    chunks_from_cache: int = 0
    chunks_failed: dict[str, int] = field(default_factory=dict)
    """Chunks whose reply gave no pairs, by why (asked again on a rerun)."""
    pairs_drafted: int = 0
    pairs_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    """Pairs dropped, by the gate (or the review) that dropped them."""
    reviewed: dict[str, int] = field(default_factory=dict)
    """What a person decided: accepted, rejected, edited."""
    facts_train: int = 0
    facts_eval: int = 0
    train_records: int = 0
    eval_records: int = 0
    drafting_seconds: float = 0.0
    pairs_per_minute: float = 0.0
    """Pairs drafted per minute of waiting for the generator in this run."""
    seconds: float = 0.0

    @classmethod
    def read(cls, folder: Path) -> PrepareReport:
        """The report.json of a prepared folder; DataError when it is not one."""
        try:
            saved = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise DataError(f"{folder}: not a folder `tuneforge data prepare` wrote (no readable {REPORT_FILE})",
                            "run `tuneforge data prepare SOURCE… --out FOLDER` first") from None
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in saved.items() if key in known})

    def summary(self, folder: Path) -> str:
        """The last line a run prints: what it wrote and, for pairs, what the gates kept."""
        if self.generator is None:
            return f"{self.train_records} train and {self.eval_records} eval chunk record(s) in {folder}"
        dropped = ", ".join(f"{number} {reason}" for reason, number in self.dropped.items()) or "none"
        failed = "".join(f"; {number} chunk(s): {why}" for why, number in self.chunks_failed.items())
        return (f"{self.pairs_drafted} pair(s) drafted, {self.pairs_kept} kept (dropped: {dropped}){failed}; "
                f"{self.train_records} train ({self.facts_train} facts) and {self.eval_records} eval ({self.facts_eval} facts) in {folder}")

    def write(self, folder: Path) -> None:
        """Save it as the folder's report.json."""
        atomic_write_text(folder / REPORT_FILE, json.dumps(asdict(self), indent=2, ensure_ascii=False))


def prepare_from_documents(sources: list[Path], out_dir: Path, tokenizer: Any, model: str = "default",
                           chunk_tokens: int = DEFAULT_CHUNK_TOKENS, eval_share: float = 0.1, seed: int = 42,
                           echo: Callable[[str], None] | None = print, generator: Any = None, questions_per_chunk: int = 3,
                           paraphrases: int = 0, on_progress: ProgressCallback | None = None) -> PrepareReport:
    """Extract `sources`, chunk them with `tokenizer`, draft pairs with `generator` when one is given
    (a generators.Generator), and write the folder `out_dir` (see the module docstring)."""
    started = time.perf_counter()
    _check_settings(eval_share, chunk_tokens, questions_per_chunk, paraphrases)
    report = PrepareReport([str(s) for s in sources], model, chunk_tokens, eval_share, seed)
    extraction = extract(sources, on_progress)
    report.documents, report.pages, report.skipped = extraction.documents, extraction.pages, extraction.skipped
    for line in extraction.skipped:
        _say(echo, f"skipped {line}")
    if not extraction.passages:
        raise DataError(f"{', '.join(report.sources)}: no text in any document", "pass PDF (with a text layer), DOCX, HTML, Markdown or TXT files")
    _say(echo, f"read {report.documents} document(s), {report.pages} page(s)")
    chunks = chunk_passages(extraction.passages, tokenizer, chunk_tokens)
    report.chunks = len(chunks)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out_dir / CHUNKS_FILE, [{"text": c.text, "source": c.source, "tokens": c.tokens} for c in chunks])
    _say(echo, f"{len(chunks)} chunk(s) of at most {chunk_tokens} tokens")
    if generator is None:
        train, held_out = _split(chunks, id, eval_share, seed)
        report.train_records, report.eval_records = len(train), len(held_out)
        _write_jsonl(out_dir / TRAIN_FILE, [{"text": c.text, "source": c.source} for c in train])
        _write_jsonl(out_dir / EVAL_FILE, [{"text": c.text, "source": c.source} for c in held_out])
    else:
        report.records, report.generator = PAIR_RECORDS, generator.label
        report.questions_per_chunk, report.paraphrases = questions_per_chunk, paraphrases
        cache = DraftCache(out_dir, generator.identity, questions_per_chunk, paraphrases)
        drafted = draft_pairs(chunks, generator, cache, questions_per_chunk, paraphrases, on_progress)
        report.chunks_drafted, report.chunks_from_cache = drafted.asked, drafted.from_cache
        report.chunks_failed = dict(drafted.failed)
        report.drafting_seconds = round(drafted.seconds, 2)
        if drafted.seconds > 0:
            report.pairs_per_minute = round(drafted.fresh_pairs / drafted.seconds * 60, 1)
        from .pair_gates import apply_gates

        apply_gates(drafted.pairs, [chunk.text for chunk in chunks])
        write_pairs(out_dir, drafted.pairs, report)
    report.seconds = round(time.perf_counter() - started, 2)
    report.write(out_dir)
    _say(echo, report.summary(out_dir))
    return report


def write_pairs(out_dir: Path, pairs: list[Pair], report: PrepareReport) -> None:
    """Apply the folder's reviews to `pairs`, split the kept ones by fact, and write pairs.jsonl,
    train.jsonl and eval.jsonl, with their counts in `report` (which the caller writes)."""
    reviews = read_reviews(out_dir)
    for pair in pairs:
        if pair.id in reviews:
            pair.apply_review(reviews[pair.id])
    kept = [pair for pair in pairs if pair.kept]
    train, held_out = _split(kept, lambda pair: pair.fact, report.eval_share, report.seed)
    _write_jsonl(out_dir / PAIRS_FILE, [pair.record() for pair in pairs])
    _write_jsonl(out_dir / TRAIN_FILE, [pair.training_record() for pair in train])
    _write_jsonl(out_dir / EVAL_FILE, [pair.training_record() for pair in held_out])
    report.pairs_drafted, report.pairs_kept = len(pairs), len(kept)
    report.dropped = dict(Counter(pair.dropped for pair in pairs if not pair.kept).most_common())
    report.reviewed = {name: number for name, number in (
        (ACCEPTED, sum(p.review == ACCEPTED for p in pairs)), (REJECTED, sum(p.review == REJECTED for p in pairs)),
        ("edited", sum(p.edited for p in pairs))) if number}
    report.facts_train, report.facts_eval = len({p.fact for p in train}), len({p.fact for p in held_out})
    report.train_records, report.eval_records = len(train), len(held_out)


def read_pairs(out_dir: Path) -> list[Pair]:
    """The pairs of a prepared folder, as pairs.jsonl holds them."""
    path = out_dir / PAIRS_FILE
    if not path.exists():
        raise DataError(f"{out_dir}: no {PAIRS_FILE} (it was prepared without --generator)", "run `tuneforge data prepare` with --generator")
    return [Pair.from_record(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_chunks(out_dir: Path) -> list[Chunk]:
    """The chunks of a prepared folder, in order."""
    lines = (out_dir / CHUNKS_FILE).read_text(encoding="utf-8").splitlines()
    return [Chunk(record["text"], record["source"], record["tokens"]) for record in map(json.loads, lines)]


def read_reviews(out_dir: Path) -> dict[str, dict[str, Any]]:
    """reviews.json: a person's verdicts and edits, by pair id (empty when there are none)."""
    path = out_dir / REVIEWS_FILE
    if not path.exists():
        return {}
    try:
        reviews = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})", "fix it, or delete it to drop the reviews in it") from None
    return reviews if isinstance(reviews, dict) else {}


def save_reviews(out_dir: Path, reviews: dict[str, dict[str, Any]]) -> PrepareReport:
    """Add `reviews` (pair id → {"review", "question"?, "answer"?}) to the folder's reviews.json and
    write pairs.jsonl, train.jsonl, eval.jsonl and report.json again with them applied."""
    report = PrepareReport.read(out_dir)
    pairs = read_pairs(out_dir)
    known = {pair.id for pair in pairs}
    unknown = sorted(set(reviews) - known)
    if unknown:
        raise DataError(f"{out_dir}: no pair {unknown[0]} in {PAIRS_FILE}", "review the pairs of this folder's pairs.jsonl")
    atomic_write_text(out_dir / REVIEWS_FILE, json.dumps({**read_reviews(out_dir), **reviews}, indent=1, ensure_ascii=False))
    write_pairs(out_dir, pairs, report)
    report.write(out_dir)
    return report


def _check_settings(eval_share: float, chunk_tokens: int, questions_per_chunk: int, paraphrases: int) -> None:
    if not 0 <= eval_share < 1:
        raise DataError(f"--eval-share {eval_share}: must be at least 0 and below 1", "for example --eval-share 0.1")
    if chunk_tokens < MIN_CHUNK_TOKENS:
        raise DataError(f"--chunk-tokens {chunk_tokens}: chunks need at least {MIN_CHUNK_TOKENS} tokens", "for example --chunk-tokens 512")
    if not 1 <= questions_per_chunk <= 20:
        raise DataError(f"--questions-per-chunk {questions_per_chunk}: must be 1 to 20", "for example --questions-per-chunk 3")
    if not 0 <= paraphrases <= 10:
        raise DataError(f"--paraphrases {paraphrases}: must be 0 to 10", "for example --paraphrases 2")


def _split(items: list[Any], group: Callable[[Any], Any], eval_share: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Hold out `eval_share` of the groups (chunks, or facts with their paraphrases), none below
    MIN_ITEMS_FOR_EVAL groups; reproducible for a seed, each side in the original order."""
    groups = list(dict.fromkeys(group(item) for item in items))
    if eval_share <= 0 or len(groups) < MIN_ITEMS_FOR_EVAL:
        return list(items), []
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    held = {groups[i] for i in order[:max(1, round(len(groups) * eval_share))]}
    return [item for item in items if group(item) not in held], [item for item in items if group(item) in held]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def _say(echo: Callable[[str], None] | None, text: str) -> None:
    if echo:
        echo(text)
