"""Columnar datasets, read with pyarrow and the `datasets` library: Parquet and Arrow files, a
folder written by `datasets.save_to_disk`, and a Hugging Face hub dataset id.

Rows are read a batch at a time (Arrow files are memory-mapped), and each comes with its
place — `FILE:row N`, or `ID[split]:row N` — so a problem names the record as a line
number does for a text file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError

Rows = Iterator[tuple[str, dict[str, Any] | str]]
"""(where, record) pairs; a string record is the problem found there."""
BATCH_ROWS = 4096
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?$")
"""owner/name, optionally :config (e.g. `tatsu-lab/alpaca`, `HuggingFaceH4/ultrachat_200k:default`)."""


def is_saved_dataset(folder: Path) -> bool:
    """Whether `folder` was written by `datasets.save_to_disk` (a Dataset or a DatasetDict)."""
    return (folder / "dataset_info.json").is_file() or (folder / "dataset_dict.json").is_file()


def looks_like_hub_id(text: str) -> bool:
    """Whether `text` is written like a hub dataset id (owner/name[:config]) rather than a file name."""
    from ..config import FILE_SUFFIXES

    return bool(HUB_ID.match(text)) and Path(text.split(":", 1)[0]).suffix.lower() not in FILE_SUFFIXES


def read_parquet(path: Path) -> Rows:
    """The rows of a Parquet file, a batch at a time."""
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, … for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({exc})", "check that the download or copy finished") from None
    yield from _numbered(table.iter_batches(batch_size=BATCH_ROWS), str(path))


def read_arrow(path: Path) -> Rows:
    """The rows of an Arrow file (the stream format `datasets` writes, or the IPC file format), memory-mapped."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path))
        try:
            reader: Any = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            batches = iter(reader)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, … for a damaged file
        raise DataError(f"{path}: not a readable Arrow file ({exc})", "check that the download or copy finished") from None
    yield from _numbered(batches, str(path))


def read_saved_dataset(folder: Path, split: str | None, default_splits: tuple[str, ...] = ("train",)) -> Rows:
    """The rows of a `save_to_disk` folder (a DatasetDict's `split`, else the first of `default_splits` it has)."""
    import datasets

    try:
        saved = datasets.load_from_disk(str(folder))
    except Exception as exc:  # noqa: BLE001 - a damaged folder raises many kinds
        raise DataError(f"{folder}: not a readable saved dataset ({type(exc).__name__}: {exc})",
                        "save it again with `Dataset.save_to_disk`, or export it to JSONL or Parquet") from None
    table, chosen = _pick_split(saved, split, default_splits, str(folder))
    yield from _rows(table, f"{folder}" + (f"[{chosen}]" if chosen else ""))


def read_hub_dataset(reference: str, split: str | None, default_splits: tuple[str, ...] = ("train",)) -> Rows:
    """The rows of a hub dataset `owner/name[:config]`: from the local cache, or downloaded when online."""
    import datasets

    hub_id, _, config = reference.partition(":")
    try:
        loaded = datasets.load_dataset(hub_id, config or None)
    except Exception as exc:  # noqa: BLE001 - offline, not found, gated or a proxy: the datasets library raises many kinds
        raise DataError(
            f"{reference}: not in the local dataset cache and the hub cannot be reached ({type(exc).__name__})",
            f"fetch it on a connected machine with `python -c \"import datasets; datasets.load_dataset('{hub_id}'"
            f"{', ' + repr(config) if config else ''})\"` (it is cached for later), or pass a local .jsonl/.parquet file",
        ) from None
    table, chosen = _pick_split(loaded, split, default_splits, reference)
    yield from _rows(table, f"{reference}[{chosen}]" if chosen else reference)


def _pick_split(loaded: Any, split: str | None, default_splits: tuple[str, ...], name: str) -> tuple[Any, str | None]:
    """A DatasetDict's `split` (else the first of `default_splits` it has) and its name; a single Dataset as it is."""
    import datasets

    if not isinstance(loaded, datasets.DatasetDict):
        return loaded, None
    wanted = [split] if split else list(default_splits)
    chosen = next((candidate for candidate in wanted if candidate in loaded), None)
    if chosen is None:
        raise DataError(f"{name}: has no split {' or '.join(repr(s) for s in wanted)} (it has {', '.join(loaded)})",
                        "choose one with --data-split / --eval-data-split (data_split, eval_data_split in the run config)")
    return loaded[chosen], chosen


def _numbered(batches: Iterator[Any], where: str) -> Rows:
    """Each row of a stream of Arrow record batches, with its 1-based row number."""
    row = 0
    for batch in batches:
        for record in batch.to_pylist():
            row += 1
            yield f"{where}:row {row}", record


def _rows(table: Any, where: str) -> Rows:
    """Each row of a `datasets.Dataset`, read as Arrow a batch at a time."""
    return _numbered(table.with_format("arrow").iter(batch_size=BATCH_ROWS), where)
