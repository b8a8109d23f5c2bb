"""Data: check a dataset, draft one from documents, review the drafted pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RunConfig
from ..data.formats import load_examples
from ..data.prepare import DataRecipe, DataStats, prepare, trained_segments
from ..demo import DEMO_DATA, demo_file
from ..drafting.drafts import ACCEPTED, REJECTED, Pair
from ..drafting.from_documents import PrepareReport
from ..progress import ProgressCallback
from . import Echo

if TYPE_CHECKING:
    from ..drafting.chunking import Chunk

__all__ = ["ACCEPTED", "DEMO_DATA", "REJECTED", "demo_file", "DataReport", "Pair", "PrepareReport", "check_data", "evidence_span",
           "generator_note", "prepare_documents", "prepared_pairs", "prepared_training_files", "preview_chunks", "review_pairs",
           "test_generator"]


@dataclass
class DataReport:
    """What `check_data` found: the detected shape, every problem, and (without problems) the stats
    and the first training example as (text, trained) runs."""

    path: Path
    shape: str
    problems: list[str]
    stats: DataStats | None
    preview: list[tuple[str, bool]] = field(default_factory=list)
    labels: tuple[int, int] | None = None
    """How many answers are labelled good and bad (feedback for KTO), when any record has a label."""


def check_data(data: str | Path, model: str = "default", max_length: int = 512, eval_split: float | None = None,
               columns: dict[str, str] | None = None, seed: int = 42, split: str | None = None,
               train_reasoning: bool = True, chat_template: str = "auto") -> DataReport:
    """Validate a dataset (a file, folder or hub dataset id; `split` of a hub or saved dataset) and
    measure it with `model`'s tokenizer and chat template, split as a default run splits it unless
    `eval_split` is given."""
    from ..settle import settle_eval_split

    loaded = load_examples(data, columns, split)
    if loaded.problems:
        return DataReport(loaded.path, loaded.shape, loaded.problems, None)
    eval_split = settle_eval_split(RunConfig(data=str(data), eval_split=eval_split), len(loaded.examples), loaded.shape).eval_split
    tokenizer = _tokenizer_of(model)
    prepared = prepare(loaded, tokenizer, DataRecipe(max_length, eval_split, seed, train_reasoning, chat_template))
    preview = trained_segments(prepared.train[0], tokenizer)
    labelled = [example.label for example in loaded.examples if example.label is not None]
    labels = (sum(labelled), len(labelled) - sum(labelled)) if labelled else None
    return DataReport(loaded.path, loaded.shape, [], prepared.stats, preview, labels)


def prepare_documents(sources: list[str | Path], out_dir: str | Path, model: str = "default", chunk_tokens: int = 512,
                      eval_share: float = 0.1, seed: int = 42, echo: Echo = print, generator: str | None = None,
                      questions_per_chunk: int = 3, paraphrases: int = 0,
                      on_progress: ProgressCallback | None = None) -> PrepareReport:
    """Build a training folder from documents (PDF, DOCX, HTML, Markdown, TXT): chunks cut by `model`'s
    tokenizer and, with a `generator` (`default`, a .gguf file, ollama:NAME or an OpenAI-compatible URL), question–answer
    pairs drafted from each chunk and passed through the quality gates; written to `out_dir`
    (chunks.jsonl, pairs.jsonl, train.jsonl, eval.jsonl, report.json). A rerun continues from the drafts cache."""
    from ..drafting.from_documents import prepare_from_documents
    from ..drafting.generators import generator_note, open_generator

    tokenizer = _tokenizer_of(model)
    note = generator_note(generator) if generator else None
    if note and echo:
        echo(f"warning: {note}")
    drafter = open_generator(generator) if generator else None
    try:
        return prepare_from_documents([Path(s) for s in sources], _folder(out_dir), tokenizer, model, chunk_tokens,
                                      eval_share, seed, echo, drafter, questions_per_chunk, paraphrases, on_progress)
    finally:
        if drafter is not None:
            drafter.close()


def preview_chunks(sources: list[str | Path], model: str = "default", chunk_tokens: int = 512,
                   on_progress: ProgressCallback | None = None) -> tuple[list[Chunk], list[str]]:
    """The chunks `prepare_documents` would draft from (each with its source), and the files it would skip, by why."""
    from ..drafting.chunking import chunk_passages
    from ..drafting.documents import extract

    extraction = extract([Path(s) for s in sources], on_progress)
    return chunk_passages(extraction.passages, _tokenizer_of(model), chunk_tokens), extraction.skipped


def generator_note(spec: str) -> str | None:
    """What to say before drafting with the generator `spec` names (the built-in model drafts poorly), or None."""
    from ..drafting.generators import generator_note as note_for

    return note_for(spec)


def test_generator(spec: str) -> float:
    """Open the generator `spec` names and time its answer to a tiny request (a GeneratorError says why it cannot)."""
    from ..drafting.generators import open_generator, probe

    drafter = open_generator(spec)
    try:
        return probe(drafter)
    finally:
        drafter.close()


def prepared_pairs(out_dir: str | Path) -> tuple[list[Pair], list[Chunk], PrepareReport]:
    """A prepared folder's pairs, the chunks they came from, and its report: what the review shows."""
    from ..drafting.from_documents import read_chunks, read_pairs

    folder = _folder(out_dir)
    return read_pairs(folder), read_chunks(folder), PrepareReport.read(folder)


def review_pairs(out_dir: str | Path, reviews: dict[str, dict[str, str]]) -> PrepareReport:
    """Record a person's verdicts and edits (pair id → {"review": "accepted" or "rejected", "question"?, "answer"?})
    and write train.jsonl and eval.jsonl again with them applied."""
    from ..drafting.from_documents import save_reviews

    return save_reviews(_folder(out_dir), reviews)


def prepared_training_files(out_dir: str | Path) -> tuple[Path, Path | None]:
    """A prepared folder's train.jsonl, and its eval.jsonl when that holds any record."""
    from ..drafting.from_documents import EVAL_FILE, TRAIN_FILE

    folder = _folder(out_dir)
    return folder / TRAIN_FILE, (folder / EVAL_FILE if PrepareReport.read(folder).eval_records else None)


def evidence_span(evidence: str, chunk_text: str) -> tuple[int, int] | None:
    """Where a pair's evidence quote sits in its chunk (start, end), for the review to highlight; None when it is not there."""
    from ..drafting.pair_gates import evidence_span as span

    return span(evidence, chunk_text)


def _tokenizer_of(model: str) -> Any:
    from ..models import resolve_model
    from ..train.setup import load_tokenizer

    return load_tokenizer(resolve_model(model).path)


def _folder(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()
