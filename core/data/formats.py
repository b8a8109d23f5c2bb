"""Load a dataset: a file or folder becomes its shape, its examples, and every problem found.

The file readers (readers.py) give records with their FILE:LINE; the shape of the first
record that has one (records.py) decides how every record is normalised into an `Example`.
A .txt/.md document, or a folder of them, is a `documents` dataset for continued pre-training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .readers import check_text_file, first_byte, read_csv, read_json_array, read_jsonl
from .records import Example, RecordError, detect_shape, normalise_record

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


def load_examples(path: str | Path, columns: dict[str, str] | None = None) -> LoadedData:
    """Read `path` (a .jsonl/.json/.csv file, a .txt/.md document, or a folder of them) into normalised examples.

    Problems do not stop reading: they are collected with their `FILE:LINE` so a person
    sees all of them at once. Call `raise_for_problems()` before training. A file that is
    not a text dataset at all (binary data, UTF-16) is refused at once with a DataError.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder", "check the path to your dataset")
    if path.is_dir():
        return _load_documents(path, sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES))
    if not path.is_file():
        raise DataError(f"{path}: not a regular file", "pass a .jsonl, .json or .csv file, or a folder of .txt/.md documents")
    check_text_file(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _load_documents(path, [path])
    if suffix == ".csv":
        rows = read_csv(path)
    elif suffix == ".json" and first_byte(path) == b"[":
        rows = read_json_array(path)
    else:
        rows = read_jsonl(path)
    return _normalise_rows(path, rows, columns or {})


def load_checked(data: str | Path, eval_data: str | Path | None, columns: dict[str, str] | None = None) -> tuple[LoadedData, LoadedData | None]:
    """Load a run's training (and eval) data; a DataError lists every problem found."""
    loaded = load_examples(data, columns)
    loaded.raise_for_problems()
    eval_loaded = load_examples(eval_data, columns) if eval_data else None
    if eval_loaded is not None:
        eval_loaded.raise_for_problems()
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
    """Take the shape of the first record that has one, then normalise every record to it."""
    records = [(where, _rename(record, columns) if isinstance(record, dict) else record) for where, record in rows]
    objects = [(where, record) for where, record in records if isinstance(record, dict)]
    shape = next((found for _, record in objects if (found := detect_shape(record))), None)
    if objects and shape is None:
        where, record = objects[0]
        raise DataError(
            f"{where}: cannot tell the dataset's shape from fields {sorted(record)[:12]}",
            "use one of: messages, prompt/chosen/rejected, conversations, instruction/input/output, prompt/completion, text; "
            "or map your fields with --column tuneforge_name=your_name",
        )
    loaded = LoadedData(path, shape=shape or "")
    for where, record in records:
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


