"""Reading text dataset files record by record: JSONL, a JSON array, CSV, TSV (each also gzipped); each record with its FILE:LINE.

A reader yields (location, record) pairs, where a record that could not be read is the
message saying why, so a person sees every problem of a file at once. A file that is not a
text dataset at all (binary data, UTF-16) is refused at once.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError

MAX_RECORD_BYTES = 16 << 20
"""A record (one line) larger than this is refused unread: 16 MiB of text is millions of tokens, past any context."""
SNIFF_BYTES = 4096
UTF8_MARK = b"\xef\xbb\xbf"
UTF16_32_MARKS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


def data_suffix(path: Path) -> str:
    """The suffix that says what a file holds, under a `.gz` (`facts.jsonl.gz` → `.jsonl`)."""
    return Path(path.stem).suffix.lower() if path.suffix.lower() == ".gz" else path.suffix.lower()


def open_binary(path: Path) -> Any:
    """The file for reading bytes, decompressed on the fly when it is gzipped."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def check_text_file(path: Path) -> None:
    """Refuse at once a file that is not UTF-8 text: UTF-16/32 (by its byte-order mark) or binary data."""
    try:
        with open_binary(path) as handle:
            head = handle.read(SNIFF_BYTES)
    except (gzip.BadGzipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})", "check that the download or copy finished") from None
    if head.startswith(UTF16_32_MARKS):
        raise DataError(f"{path}: UTF-16 or UTF-32 text; tuneforge reads UTF-8",
                        "save the file as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8 FILE > NEW_FILE`)")
    if b"\0" in head:
        raise DataError(f"{path}: binary data (NUL bytes near its start), not a text dataset",
                        "pass a .jsonl, .json, .csv, .tsv, .parquet or .arrow file of records (a .txt/.md file for documents)")


def first_byte(path: Path) -> bytes:
    """The file's first byte that is not whitespace or a UTF-8 byte-order mark."""
    with open_binary(path) as handle:
        return handle.read(SNIFF_BYTES).removeprefix(UTF8_MARK).lstrip()[:1]


def _read_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None for a line over MAX_RECORD_BYTES, skipped without holding it."""
    with open_binary(path) as handle:
        number = 0
        try:
            while raw := handle.readline(MAX_RECORD_BYTES + 1):
                number += 1
                if len(raw) > MAX_RECORD_BYTES:
                    while raw and not raw.endswith(b"\n"):
                        raw = handle.readline(1 << 20)
                    yield number, None
                    continue
                yield number, raw.removeprefix(UTF8_MARK) if number == 1 else raw
        except (gzip.BadGzipFile, EOFError) as exc:  # a gzip cut short
            raise DataError(f"{path}: the gzip data breaks off after line {number} ({exc})",
                            "check that the download or copy finished") from None


def read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
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
    """One JSON object, or what is wrong with it (where on the line; a line that ends before its record
    does is said to be cut short, not pointed at column 1 of the next line)."""
    text = text.rstrip("\r\n")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            return f"not valid JSON: the line ends at column {len(text.rstrip())} before its record does (cut short?)"
        return f"not valid JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return "not usable JSON: nested too deeply"
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    return record


def read_json_array(path: Path) -> Iterator[tuple[str, dict[str, Any] | str]]:
    """Yield (location, record) per element of a file holding one JSON array of objects (Alpaca's format)."""
    text = _read_text(path)
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


def _read_text(path: Path) -> str:
    """The whole file as text (for formats that cannot be read a line at a time)."""
    try:
        with open_binary(path) as handle:
            return handle.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})", "save the file as UTF-8") from None
    except (gzip.BadGzipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})", "check that the download or copy finished") from None


def read_csv(path: Path, delimiter: str = ",") -> Iterator[tuple[str, dict[str, Any] | str]]:
    """Yield (location, record) per row under the header line (a .tsv is read with a tab as the delimiter)."""
    text = _read_text(path)
    csv.field_size_limit(MAX_RECORD_BYTES)  # the default (128 KiB) refuses long documents
    reader = csv.DictReader(text.splitlines(keepends=True), delimiter=delimiter)
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
