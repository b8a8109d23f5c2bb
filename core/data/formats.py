"""Read a dataset file or folder, detect its shape, and normalise every record.

Shapes: preference `pairs` (prompt/chosen/rejected, or chosen/rejected conversations),
chat `messages`, ShareGPT `conversations`, Alpaca `instruction/input/output`,
`prompt/completion`, plain `text` (JSONL or CSV), and a folder of .txt/.md documents for
continued pre-training. Every record becomes an `Example` holding either chat messages
or raw text, tagged with the file and line it came from so problems can name it. A pair
keeps its chosen answer as the last message and its rejected answer beside it, so the
same file also trains the SFT methods on the chosen answers.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import DataError

MAX_REPORTED_PROBLEMS = 20
TEXT_SUFFIXES = (".txt", ".md")
MAX_RECORD_BYTES = 16 << 20
"""A record (one line) larger than this is refused unread: 16 MiB of text is millions of tokens, past any context."""
SNIFF_BYTES = 4096
UTF8_MARK = b"\xef\xbb\xbf"
UTF16_32_MARKS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "model": "assistant", "bing": "assistant", "system": "system",
}
CHAT_ROLES = ("system", "user", "assistant")

# Shape name → the fields that identify it, checked in this order.
SHAPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pairs", ("chosen", "rejected")),
    ("messages", ("messages",)),
    ("sharegpt", ("conversations",)),
    ("alpaca", ("instruction", "output")),
    ("prompt_completion", ("prompt", "completion")),
    ("text", ("text",)),
)


@dataclass
class Example:
    """One normalised record: chat `messages`, or `text` for continued pre-training."""

    source: str
    """Where it came from, `FILE:LINE` (or the document's path)."""
    messages: list[dict[str, str]] | None = None
    text: str | None = None
    rejected: str | None = None
    """For preference pairs: the rejected answer to the same prompt (the chosen one ends `messages`)."""


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


class RecordError(ValueError):
    """A record that does not fit its shape; the message says which field is wrong."""


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
    _check_text_file(path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _load_documents(path, [path])
    if suffix == ".csv":
        rows = _read_csv(path)
    elif suffix == ".json" and _first_byte(path) == b"[":
        rows = _read_json_array(path)
    else:
        rows = _read_jsonl(path)
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


def _check_text_file(path: Path) -> None:
    """Refuse at once a file that is not UTF-8 text: UTF-16/32 (by its byte-order mark) or binary data."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(UTF16_32_MARKS):
        raise DataError(f"{path}: UTF-16 or UTF-32 text; tuneforge reads UTF-8",
                        "save the file as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8 FILE > NEW_FILE`)")
    if b"\0" in head:
        raise DataError(f"{path}: binary data (NUL bytes near its start), not a text dataset",
                        "pass a .jsonl, .json or .csv file of text records (convert Parquet or Arrow files to JSONL first)")


def _first_byte(path: Path) -> bytes:
    """The file's first byte that is not whitespace or a UTF-8 byte-order mark."""
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES).removeprefix(UTF8_MARK).lstrip()[:1]


def _read_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None for a line over MAX_RECORD_BYTES, skipped without holding it."""
    with path.open("rb") as handle:
        number = 0
        while raw := handle.readline(MAX_RECORD_BYTES + 1):
            number += 1
            if len(raw) > MAX_RECORD_BYTES:
                while raw and not raw.endswith(b"\n"):
                    raw = handle.readline(1 << 20)
                yield number, None
                continue
            yield number, raw.removeprefix(UTF8_MARK) if number == 1 else raw


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """Yield (location, record) per non-blank line; a string record is a problem message."""
    for number, raw in _read_lines(path):
        where = f"{path}:{number}"
        if raw is None:
            yield where, f"a record longer than {MAX_RECORD_BYTES >> 20} MiB; split it into smaller examples"
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield where, f"not UTF-8 text (byte {exc.start} of the line; save the file as UTF-8)"
            continue
        if line.strip():
            yield where, _parse_record(line)


def _parse_record(text: str) -> dict[str, Any] | str:
    """One JSON object, or what is wrong with it."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return "not usable JSON: nested too deeply"
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    return record


def _read_json_array(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """Yield (location, record) per element of a file holding one JSON array of objects (Alpaca's format)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8") from None
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    while True:
        while position < len(text) and (text[position].isspace() or text[position] == ","):
            position += 1
        if position >= len(text):
            raise DataError(f"{path}: the JSON array is not closed (the file may be cut short)", "check the end of the file")
        if text[position] == "]":
            return
        where = f"{path}:{text.count(chr(10), 0, position) + 1}"
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg} at column {exc.colno}",
                            "fix the file there; one broken element stops a JSON array from being read (JSONL lines do not)") from None
        except RecursionError:
            raise DataError(f"{where}: not usable JSON: nested too deeply", "fix the record there") from None
        yield where, record if isinstance(record, dict) else f"expected a JSON object, got {type(record).__name__}"


def _read_csv(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8") from None
    csv.field_size_limit(MAX_RECORD_BYTES)  # the default (128 KiB) refuses long documents
    reader = csv.DictReader(text.splitlines(keepends=True))
    if not reader.fieldnames:
        raise DataError(f"{path}: empty CSV file", "the first line must name the columns")
    start = 2
    try:
        for row in reader:
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if None in row:
                yield where, f"more values than the {len(reader.fieldnames)} columns in the header"
                continue
            yield where, {key: value for key, value in row.items() if value is not None}
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: {exc}", "check the CSV quoting") from None


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


def detect_shape(record: dict[str, Any]) -> str | None:
    """The shape whose identifying fields the record has, or None."""
    for shape, fields in SHAPES:
        if all(name in record for name in fields):
            return shape
    return None


def normalise_record(shape: str, record: dict[str, Any], where: str) -> Example:
    """Turn one record of a known shape into an Example; RecordError says what is wrong."""
    missing = [name for name in dict(SHAPES)[shape] if name not in record]
    if missing:
        raise RecordError(f"missing field(s) {', '.join(missing)} (the dataset's shape is '{shape}')")
    if shape == "text":
        return Example(where, text=_text(record, "text"))
    if shape == "pairs":
        return _pair(record, where)
    if shape == "messages":
        messages = _chat_messages(record["messages"], "messages", role_key="role", content_key="content", roles=None)
    elif shape == "sharegpt":
        messages = _chat_messages(record["conversations"], "conversations", role_key="from", content_key="value", roles=SHAREGPT_ROLES)
    elif shape == "alpaca":
        prompt = _text(record, "instruction")
        extra = record.get("input") or ""
        if not isinstance(extra, str):
            raise RecordError("field 'input' must be a string")
        _valid_unicode(extra, "field 'input'")
        messages = _system(record) + [
            {"role": "user", "content": f"{prompt}\n\n{extra}" if extra.strip() else prompt},
            {"role": "assistant", "content": _text(record, "output")},
        ]
    else:  # prompt_completion
        messages = _system(record) + _turns(record, "prompt", "user") + _turns(record, "completion", "assistant")
    if not any(m["role"] == "assistant" for m in messages):
        raise RecordError("no assistant turn: nothing to learn from this record")
    return Example(where, messages=messages)


def _pair(record: dict[str, Any], where: str) -> Example:
    """prompt + chosen + rejected (strings or chat messages), or two whole conversations that
    differ only in their last (assistant) message."""
    chosen = _answer_turns(record, "chosen")
    rejected = _answer_turns(record, "rejected")
    if "prompt" in record:
        prompt = _system(record) + _turns(record, "prompt", "user")
    else:  # conversations: the shared beginning is the prompt
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected[-1:]
        if prompt != _answer_turns(record, "rejected")[:-1]:
            raise RecordError("'chosen' and 'rejected' must be the same conversation up to their last message")
    if not prompt or prompt[-1]["role"] != "user":
        raise RecordError("a pair needs a prompt ending with a user message")
    if len(chosen) != 1 or len(rejected) != 1 or chosen[0]["role"] != "assistant" or rejected[0]["role"] != "assistant":
        raise RecordError("'chosen' and 'rejected' must each end with one assistant answer")
    if chosen[0]["content"] == rejected[0]["content"]:
        raise RecordError("'chosen' and 'rejected' are the same answer: nothing to prefer")
    return Example(where, messages=prompt + chosen, rejected=rejected[0]["content"])


def _answer_turns(record: dict[str, Any], name: str) -> list[dict[str, str]]:
    """A pair's answer: a string (one assistant message) or a list of chat messages."""
    value = record[name]
    if isinstance(value, list):
        return _chat_messages(value, name, role_key="role", content_key="content", roles=None)
    return [{"role": "assistant", "content": _text(record, name)}]


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise RecordError(f"field '{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(f"field '{name}' is empty")
    return _valid_unicode(value, f"field '{name}'")


def _system(record: dict[str, Any]) -> list[dict[str, str]]:
    system = record.get("system")
    if system is None or system == "":
        return []
    if not isinstance(system, str):
        raise RecordError("field 'system' must be a string")
    return [{"role": "system", "content": _valid_unicode(system, "field 'system'")}]


def _turns(record: dict[str, Any], name: str, role: str) -> list[dict[str, str]]:
    """A prompt or completion: a string, or a list of chat messages (TRL's conversational form)."""
    value = record[name]
    if isinstance(value, list):
        return _chat_messages(value, name, role_key="role", content_key="content", roles=None)
    return [{"role": role, "content": _text(record, name)}]


def _chat_messages(value: Any, name: str, *, role_key: str, content_key: str, roles: dict[str, str] | None) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RecordError(f"field '{name}' must be a non-empty list of messages")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise RecordError(f"{name}[{index}] must be an object with '{role_key}' and '{content_key}'")
        role, content = message.get(role_key), message.get(content_key)
        role = roles.get(role) if roles is not None and isinstance(role, str) else role
        if role not in CHAT_ROLES:
            allowed = sorted(roles) if roles is not None else list(CHAT_ROLES)
            raise RecordError(f"{name}[{index}].{role_key} is {message.get(role_key)!r}; expected one of {allowed}")
        if not isinstance(content, str):
            raise RecordError(f"{name}[{index}].{content_key} must be a string, got {type(content).__name__}")
        if role == "assistant" and not content.strip():
            raise RecordError(f"{name}[{index}] is an empty assistant message")
        messages.append({"role": role, "content": _valid_unicode(content, f"{name}[{index}].{content_key}")})
    return messages


def _valid_unicode(value: str, what: str) -> str:
    """`value`, unless it holds a lone surrogate (JSON's "\\ud800" escape), which no tokenizer can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(f"{what} holds an invalid character at position {exc.start} (a lone UTF-16 surrogate)") from None
    return value
