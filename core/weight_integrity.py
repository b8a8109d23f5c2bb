"""Check that model files are whole before anything loads them: safetensors weights and GGUF files.

An interrupted download or copy leaves a file that is shorter than its own header says.
Loaders then fail deep inside numpy or llama.cpp with messages like "cannot reshape array";
these checks read only the headers (milliseconds, even for a 15 GB file) and name the file.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ModelError

GGUF_MAGIC = b"GGUF"
GGUF_DEFAULT_ALIGNMENT = 32
# GGUF metadata value types → their struct format (8 = string and 9 = array are read apart).
GGUF_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
GGUF_SCALAR_SIZES = {kind: struct.calcsize(f"<{fmt}") for kind, fmt in GGUF_SCALAR_FORMATS.items()}
GGUF_STRING, GGUF_ARRAY, GGUF_UINT32 = 8, 9, 4
CUT_SHORT_HINT = "the download or copy was probably interrupted: fetch the file again"


def check_safetensors_folder(folder: Path) -> None:
    """A ModelError naming the first weights file that is cut short or unreadable, or a shard the index lists but is missing."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise ModelError(f"{index}: not a valid safetensors index", CUT_SHORT_HINT) from None
        missing = sorted(name for name in shards if not (folder / name).is_file())
        if missing:
            raise ModelError(f"{folder}: weight files listed in {index.name} are missing: {', '.join(missing[:5])}", CUT_SHORT_HINT)
    for file in sorted(folder.glob("*.safetensors")):
        check_safetensors(file)


def check_safetensors(file: Path) -> None:
    """A ModelError when a .safetensors file's header is unreadable or its data ends early."""
    header_length, tensors = safetensors_header(file)
    try:
        end = max((entry["data_offsets"][1] for entry in tensors.values()), default=0)
    except (KeyError, TypeError, IndexError):
        raise _unreadable_header(file) from None
    size = file.stat().st_size
    if 8 + header_length + end > size:
        raise ModelError(f"{file}: cut short: it holds {size:,} of the {8 + header_length + end:,} bytes its header lists",
                         CUT_SHORT_HINT)


def safetensors_header(file: Path) -> tuple[int, dict[str, Any]]:
    """A .safetensors file's header length and its tensor entries by name ({"dtype", "shape", "data_offsets"}), read
    without the data; a ModelError when the header is cut short or cannot be read."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        head = handle.read(8)
        header_length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if header_length < 2 or 8 + header_length > size:
            raise ModelError(f"{file}: not a complete safetensors file (its header is cut short or damaged)", CUT_SHORT_HINT)
        try:
            header = json.loads(handle.read(header_length))
            return header_length, {name: entry for name, entry in header.items() if name != "__metadata__"}
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise _unreadable_header(file) from None


def _unreadable_header(file: Path) -> ModelError:
    return ModelError(f"{file}: not a valid safetensors file (its header cannot be read)", CUT_SHORT_HINT)


def check_gguf(file: Path, error: type[Exception] = ModelError) -> None:
    """Raise `error` when `file` is not a GGUF file, or holds less data than its tensor table lists."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise error(f"{file}: not a GGUF file", "pass a .gguf model file (llama.cpp's format)")
        if size < 24:
            raise error(f"{file}: cut short inside its header", CUT_SHORT_HINT)
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                needed = _gguf_extent(data)
            except (struct.error, IndexError, ValueError, KeyError):
                raise error(f"{file}: cut short or damaged inside its header ({size:,} bytes)", CUT_SHORT_HINT) from None
    if needed > size:
        raise error(f"{file}: cut short: it holds {size:,} of the {needed:,} bytes its tensor table lists", CUT_SHORT_HINT)


def gguf_architecture(file: Path) -> str | None:
    """The architecture (`general.architecture`) a GGUF file's header names, read without parsing the rest (a
    262k-token vocabulary takes gguf's reader seconds); None when the header has none or cannot be read."""
    try:
        architecture = gguf_metadata(file, {"general.architecture"}).get("general.architecture")
    except (OSError, ValueError, struct.error, IndexError, KeyError):
        return None
    return architecture if isinstance(architecture, str) else None


def gguf_metadata(file: Path, keys: set[str]) -> dict[str, Any]:
    """The values of `keys` in a GGUF file's header (strings, numbers, lists of them), read straight from the file:
    gguf's reader wraps every item of every array in a numpy view, half a minute for a 262k-token vocabulary and its
    merges, where this reads them in a second. Reading stops after the last key asked for."""
    found: dict[str, Any] = {}
    with file.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for key, _, value, _ in _gguf_metadata(data):
            if key in keys:
                found[key] = value
                if len(found) == len(keys):
                    break
    return found


def _read_value(data: mmap.mmap, position: int, kind: int) -> tuple[Any, int]:
    """A metadata value at `position` of type `kind`, and where it ends."""
    if kind == GGUF_STRING:
        return _gguf_string(data, position)
    if kind == GGUF_ARRAY:
        item_kind, count = struct.unpack_from("<IQ", data, position)
        position += 12
        if item_kind in GGUF_SCALAR_FORMATS:
            return list(struct.unpack_from(f"<{count}{GGUF_SCALAR_FORMATS[item_kind]}", data, position)), position + count * GGUF_SCALAR_SIZES[item_kind]
        items = []
        for _ in range(count):
            item, position = _read_value(data, position, item_kind)
            items.append(item)
        return items, position
    return struct.unpack_from(f"<{GGUF_SCALAR_FORMATS[kind]}", data, position)[0], position + GGUF_SCALAR_SIZES[kind]


def _gguf_metadata(data: mmap.mmap) -> Iterator[tuple[str, int, Any, int]]:
    """A GGUF header's metadata entries in order, each as (key, value type, value, where the entry ends); a caller
    may stop early, before the vocabulary's long arrays are walked."""
    kv_count = struct.unpack_from("<IQQ", data, 4)[2]
    position = 24
    for _ in range(kv_count):
        key, position = _gguf_string(data, position)
        kind = struct.unpack_from("<I", data, position)[0]
        value, end = _read_value(data, position + 4, kind)
        yield key, kind, value, end
        position = end


def _gguf_extent(data: mmap.mmap) -> int:
    """The file size a GGUF's header implies: where its last tensor's data ends."""
    import gguf

    tensor_count = struct.unpack_from("<IQQ", data, 4)[1]
    position = 24  # where the tensor table starts: past the header, then past each metadata entry
    alignment = GGUF_DEFAULT_ALIGNMENT
    for key, kind, value, entry_end in _gguf_metadata(data):
        position = entry_end
        if key == "general.alignment" and kind == GGUF_UINT32:
            alignment = value
    end = 0
    for _ in range(tensor_count):
        _, position = _gguf_string(data, position)
        n_dims = struct.unpack_from("<I", data, position)[0]
        dims = struct.unpack_from(f"<{n_dims}Q", data, position + 4)
        kind, offset = struct.unpack_from("<IQ", data, position + 4 + 8 * n_dims)
        position += 4 + 8 * n_dims + 12
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)]
        elements = 1
        for dim in dims:
            elements *= dim
        end = max(end, offset + elements // block * type_size)
    if not tensor_count:  # no data section, so no padding before one (a vocabulary-only file ends with its header)
        return position
    data_start = -(-position // alignment) * alignment
    return data_start + end


def _gguf_string(data: mmap.mmap, position: int) -> tuple[str, int]:
    length = struct.unpack_from("<Q", data, position)[0]
    raw = data[position + 8 : position + 8 + length]
    if len(raw) != length:
        raise IndexError("string past the end of the file")
    return raw.decode("utf-8", errors="replace"), position + 8 + length
