"""`tuneforge data prepare`: a training folder built from documents, every record traceable to its source.

Documents are extracted (documents.py) and cut into chunks by the chosen model's tokenizer
(chunking.py). The output folder receives `chunks.jsonl` (text and source of each chunk),
`train.jsonl` and `eval.jsonl` (records `tuneforge train --data` reads as they are) and
`report.json` (what was read, skipped and written, and how long it took). Without a
generator the chunks themselves are the records, as `text` for continued pre-training:
that path needs nothing but the documents.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import DataError
from .chunking import DEFAULT_CHUNK_TOKENS, MIN_CHUNK_TOKENS, Chunk, chunk_passages
from .documents import extract

CHUNKS_FILE, TRAIN_FILE, EVAL_FILE, REPORT_FILE = "chunks.jsonl", "train.jsonl", "eval.jsonl", "report.json"
MIN_CHUNKS_FOR_EVAL = 10
"""Below this many chunks nothing is held out: each is needed for training."""


@dataclass
class PrepareReport:
    """report.json: what a `data prepare` run read, skipped and wrote."""

    sources: list[str]
    model: str
    chunk_tokens: int
    documents: int = 0
    pages: int = 0
    chunks: int = 0
    train_records: int = 0
    eval_records: int = 0
    records: str = "text (continued pre-training)"
    """What the records in train.jsonl and eval.jsonl are."""
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def prepare_from_documents(sources: list[Path], out_dir: Path, tokenizer: Any, model: str = "default",
                           chunk_tokens: int = DEFAULT_CHUNK_TOKENS, eval_share: float = 0.1, seed: int = 42,
                           echo: Callable[[str], None] | None = print) -> PrepareReport:
    """Extract `sources`, chunk them with `tokenizer`, and write the folder `out_dir` (see the module docstring)."""
    started = time.perf_counter()
    if not 0 <= eval_share < 1:
        raise DataError(f"--eval-share {eval_share}: must be at least 0 and below 1", "for example --eval-share 0.1")
    if chunk_tokens < MIN_CHUNK_TOKENS:
        raise DataError(f"--chunk-tokens {chunk_tokens}: chunks need at least {MIN_CHUNK_TOKENS} tokens", "for example --chunk-tokens 512")
    report = PrepareReport([str(s) for s in sources], model, chunk_tokens)
    extraction = extract(sources)
    report.documents, report.pages, report.skipped = extraction.documents, extraction.pages, extraction.skipped
    for line in extraction.skipped:
        _say(echo, f"skipped {line}")
    if not extraction.passages:
        raise DataError(f"{', '.join(report.sources)}: no text in any document", "pass PDF (with a text layer), DOCX, HTML, Markdown or TXT files")
    _say(echo, f"read {report.documents} document(s), {report.pages} page(s)")
    chunks = chunk_passages(extraction.passages, tokenizer, chunk_tokens)
    train, held_out = _split(chunks, eval_share, seed)
    report.chunks, report.train_records, report.eval_records = len(chunks), len(train), len(held_out)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out_dir / CHUNKS_FILE, [{"text": c.text, "source": c.source, "tokens": c.tokens} for c in chunks])
    _write_jsonl(out_dir / TRAIN_FILE, [{"text": c.text, "source": c.source} for c in train])
    _write_jsonl(out_dir / EVAL_FILE, [{"text": c.text, "source": c.source} for c in held_out])
    report.seconds = round(time.perf_counter() - started, 2)
    atomic_write_text(out_dir / REPORT_FILE, json.dumps(asdict(report), indent=2))
    _say(echo, f"{len(chunks)} chunk(s) of at most {chunk_tokens} tokens: {len(train)} train, {len(held_out)} eval, in {out_dir}")
    return report


def _split(chunks: list[Chunk], eval_share: float, seed: int) -> tuple[list[Chunk], list[Chunk]]:
    """Hold out `eval_share` of the chunks (none below MIN_CHUNKS_FOR_EVAL), reproducibly for a seed, in document order."""
    if eval_share <= 0 or len(chunks) < MIN_CHUNKS_FOR_EVAL:
        return list(chunks), []
    order = list(range(len(chunks)))
    random.Random(seed).shuffle(order)
    held = set(order[:max(1, round(len(chunks) * eval_share))])
    return [c for i, c in enumerate(chunks) if i not in held], [c for i, c in enumerate(chunks) if i in held]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def _say(echo: Callable[[str], None] | None, text: str) -> None:
    if echo:
        echo(text)
