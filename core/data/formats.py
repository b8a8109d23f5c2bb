"""Load a dataset: a file or folder becomes its shape, its examples, and every problem found.

The file readers (readers.py) give records with their FILE:LINE; the shape of the first
record that has one (records.py) decides how every record is normalised into an `Example`.
A .txt/.md document, or a folder of them, is a `documents` dataset for continued pre-training.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from .readers import check_text_file, data_suffix, first_byte, read_csv, read_json_array, read_jsonl
from .records import Example, RecordError, detect_shape, normalise_record
from .tables import is_saved_dataset, looks_like_hub_id, read_arrow, read_hub_dataset, read_parquet, read_saved_dataset

if TYPE_CHECKING:
    from ..config import RunConfig

MAX_REPORTED_PROBLEMS = 20
TEXT_SUFFIXES = (".txt", ".md")
"""Documents for continued pre-training."""


@dataclass
class LoadedData:
    """The result of reading a dataset: its shape, examples, and every problem found."""

    path: Path
    shape: str
    examples: list[Example] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def raise_for_problems(self) -> None:
        """A DataError listing the problems (the first few of them) when there are any."""
        if not self.problems:
            return
        shown = self.problems[:MAX_REPORTED_PROBLEMS]
        more = len(self.problems) - len(shown)
        message = "\n".join(shown + ([f"… and {more} more"] if more > 0 else []))
        raise DataError(message, f"fix the records above; `tuneforge data check {self.path}` lists them all")


def load_examples(source: str | Path, columns: dict[str, str] | None = None, split: str | None = None,
                  default_splits: tuple[str, ...] = ("train",)) -> LoadedData:
    """Read a dataset into normalised examples: a .jsonl/.json/.csv/.tsv file (each also .gz), a
    .parquet or .arrow file, a `datasets.save_to_disk` folder, a hub dataset id `owner/name[:config]`,
    or a .txt/.md document or a folder of them. `split` picks a split of a hub dataset or saved
    DatasetDict; unset, the first of `default_splits` it has.

    Problems do not stop reading: they are collected with their `FILE:LINE` (`:row N` for
    columnar data) so a person sees all of them at once. Call `raise_for_problems()` before
    training. A file that is not a dataset at all (binary data, UTF-16) is refused at once.
    """
    path = Path(source).expanduser()
    if not path.exists():
        if looks_like_hub_id(str(source)):
            return _normalise_rows(Path(str(source)), read_hub_dataset(str(source), split, default_splits), columns or {})
        raise DataError(f"{path}: no such file or folder", "check the path to your dataset (a hub dataset is named owner/name)")
    if path.is_dir():
        if is_saved_dataset(path):
            return _normalise_rows(path, read_saved_dataset(path, split, default_splits), columns or {})
        return _load_documents(path, sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES))
    if not path.is_file():
        raise DataError(f"{path}: not a regular file", "pass a dataset file, a saved dataset folder, or a folder of .txt/.md documents")
    if data_suffix(path) in TEXT_SUFFIXES:
        return _one_document(path)
    return _normalise_rows(path, _file_rows(path), columns or {})


def _file_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """The records of a dataset file, by the reader its suffix names (JSONL when it names none)."""
    suffix = data_suffix(path)
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix == ".arrow":
        return read_arrow(path)
    check_text_file(path)
    if suffix in (".csv", ".tsv"):
        return read_csv(path, "\t" if suffix == ".tsv" else ",")
    if suffix == ".json" and first_byte(path) == b"[":
        return read_json_array(path)
    return read_jsonl(path)


def _one_document(path: Path) -> LoadedData:
    check_text_file(path)
    return _load_documents(path, [path])


EVAL_SPLITS = ("validation", "test")
"""The splits a hub or saved dataset given as eval data is read from, when none is named."""


def load_run_data(config: RunConfig, check: bool = True) -> tuple[LoadedData, LoadedData | None]:
    """A run's training (and eval) data as its config names them; with `check`, a DataError lists every problem found."""
    loaded = load_examples(config.data, config.columns, config.data_split)
    eval_loaded = load_examples(config.eval_data, config.columns, config.eval_data_split, EVAL_SPLITS) if config.eval_data else None
    if check:
        for data in (loaded, eval_loaded):
            if data is not None:
                data.raise_for_problems()
    return loaded, eval_loaded


def _load_documents(source: Path, files: list[Path]) -> LoadedData:
    """Plain-text documents for continued pre-training: one example per non-empty file."""
    loaded = LoadedData(source, "documents")
    if not files:
        raise DataError(f"{source}: no .txt or .md files", "put plain-text documents in the folder, or pass a .jsonl file")
    for file in files:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            loaded.problems.append(f"{file}: not UTF-8 text (byte {exc.start})")
            continue
        if "\0" in text:
            loaded.problems.append(f"{file}: binary data (NUL characters), not a text document")
        elif text.strip():
            loaded.examples.append(Example(source=str(file), text=text))
    if not loaded.examples and not loaded.problems:
        raise DataError(f"{source}: every document is empty", "put some text in the .txt/.md files")
    return loaded


def _normalise_rows(path: Path, rows: Iterator[tuple[str, dict[str, Any] | str]], columns: dict[str, str]) -> LoadedData:
    """Take the shape of the first record that has one, then normalise every record to it as it is read
    (only the records before the first with a shape are held at once)."""
    renamed = ((where, _rename(record, columns) if isinstance(record, dict) else record) for where, record in rows)
    ahead: list[tuple[str, dict[str, Any] | str]] = []
    shape = None
    for where, record in renamed:
        ahead.append((where, record))
        if isinstance(record, dict) and (shape := detect_shape(record)):
            break
    objects = [(where, record) for where, record in ahead if isinstance(record, dict)]
    if objects and shape is None:
        where, record = objects[0]
        raise DataError(
            f"{where}: cannot tell the dataset's shape from fields {sorted(record)[:12]}",
            "use one of: messages, prompt/chosen/rejected, conversations, instruction/input/output, prompt/completion, text; "
            "or map your fields with --column tuneforge_name=your_name",
        )
    loaded = LoadedData(path, shape=shape or "")
    for where, record in itertools.chain(ahead, renamed):
        if isinstance(record, str):
            loaded.problems.append(f"{where}: {record}")
            continue
        try:
            loaded.examples.append(normalise_record(loaded.shape, record, where))
        except RecordError as exc:
            loaded.problems.append(f"{where}: {exc}")
    if not loaded.examples and not loaded.problems:
        raise DataError(f"{path}: the file holds no records", "add one JSON object per line (or CSV rows under a header)")
    return loaded


def _rename(record: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Apply the user's field mapping {tuneforge_name: file_name}."""
    if not columns:
        return record
    renamed = dict(record)
    for ours, theirs in columns.items():
        if theirs in renamed:
            renamed[ours] = renamed.pop(theirs)
    return renamed


