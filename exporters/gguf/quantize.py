"""Quantize an f16 GGUF to llama.cpp's other types through libllama (llama-cpp-python); no binary, no build."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
from pathlib import Path

from tuneforge.core.atomic import atomic_file
from tuneforge.core.errors import ExportError, ResourceError

QUANT_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k")
"""Types made by libllama from an f16 file (f32, f16, bf16 and q8_0 are written by the converter)."""
BITS_PER_WEIGHT = {
    "f32": 32.0, "f16": 16.0, "bf16": 16.0, "q8_0": 8.5, "q6_k": 6.56, "q5_k_m": 5.69, "q5_k_s": 5.54, "q5_1": 6.0,
    "q5_0": 5.5, "q4_k_m": 4.89, "q4_k_s": 4.58, "q4_1": 5.0, "q4_0": 4.5, "q3_k_m": 3.91, "q2_k": 3.35,
}
"""Average bits per weight of each type (llama.cpp's figures), for size estimates."""


def quantize(source: Path, out_file: Path, qtype: str) -> Path:
    """Write `source` (an f16/bf16/f32 GGUF) quantized to `qtype`, atomically."""
    import llama_cpp

    # libllama reports every tensor it quantizes; keep its errors only.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    if qtype not in QUANT_TYPES:
        raise ExportError(f"unknown quantization type '{qtype}'", f"use one of: f16, bf16, f32, q8_0, {', '.join(QUANT_TYPES)}")
    needed = int(source.stat().st_size * BITS_PER_WEIGHT[qtype] / 16) + (64 << 20)  # the source is f16
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
