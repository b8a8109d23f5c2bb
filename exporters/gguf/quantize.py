"""Quantize an f16 GGUF to llama.cpp's other types through libllama (llama-cpp-python); no binary, no build."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
from pathlib import Path

from tuneforge.core.atomic import atomic_file
from tuneforge.core.errors import ExportError, ResourceError

from .types import GGUF_TYPES

QUANT_TYPES = tuple(name for name, spec in GGUF_TYPES.items() if spec.bits_per_weight < 16)
"""Types libllama makes from an f16 file: every quantized type (q8_0 is also the converter's, from the HF weights)."""


def quantize(source: Path, out_file: Path, qtype: str) -> Path:
    """Write `source` (an f16/bf16/f32 GGUF) quantized to `qtype`, atomically."""
    import llama_cpp

    # libllama reports every tensor it quantizes; keep its errors only.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    if qtype not in QUANT_TYPES:
        raise ExportError(f"unknown quantization type '{qtype}'", f"use one of: {', '.join(QUANT_TYPES)}")
    needed = int(source.stat().st_size * GGUF_TYPES[qtype].bits_per_weight / 16) + (64 << 20)  # the source is f16
    free = shutil.disk_usage(out_file.parent).free
    if free < needed:
        raise ResourceError(f"{out_file.name} needs about {needed >> 20} MiB; {free >> 20} MiB free in {out_file.parent}",
                            "free some disk space, or export to another folder with --out")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{qtype.upper()}")
    params.nthread = os.cpu_count() or 1
    with atomic_file(out_file) as partial:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
        if status != 0 or not partial.is_file() or partial.stat().st_size == 0:
            free = shutil.disk_usage(out_file.parent).free
            room = f"; {free >> 20} MiB left in {out_file.parent}" if free < needed else ""
            raise ExportError(f"libllama could not quantize {source.name} to {qtype} (status {status}{room})",
                              "free some disk space if it ran out; else try another type (q8_0 and the k-quants "
                              "need row sizes that are multiples of 32/256)")
    return out_file
