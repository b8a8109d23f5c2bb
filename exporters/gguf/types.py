"""The GGUF types tuneforge exports: who writes each, how big it is, and what it is for; and the
architectures it can export.

One table for the CLI's and the app's choices, the converter and the quantizer, the memory
planner's disk estimate and the app's size labels. f32, f16, bf16 and q8_0 are written by
llama.cpp's converter itself (convert.py); the others are quantized by libllama from an f16 file.
Whether an architecture exports is read here, light (no torch), so training can say before its
first step that a model will not export.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30


def export_refusal(architecture: str) -> str | None:
    """Why a model saved as `architecture` (its config.json's class, e.g. LlamaForCausalLM) cannot be exported
    to GGUF, or None when it can: llama.cpp's converter, read from its own table, decides."""
    from .llama_cpp import FETCH_COMMAND, convertible_architectures

    known = convertible_architectures()
    if not known:
        return f"llama.cpp's GGUF converter is not fetched yet ({FETCH_COMMAND}): `tuneforge export` refuses until it is"
    if architecture in known:
        return None
    return (f"llama.cpp's GGUF converter does not know the '{architecture}' architecture: "
            "training and merging work, `tuneforge export` will refuse")


@dataclass(frozen=True)
class GgufType:
    """One `--quant` choice."""

    name: str
    bits_per_weight: float
    """Average bits per weight (llama.cpp's figures), for size estimates."""
    by_converter: bool
    """Written by the converter; otherwise quantized by libllama from the f16 file."""
    summary: str = ""
    """What it is for, in a few words; the app offers the types that have one."""

    def file_bytes(self, params_b: float) -> float:
        """The estimated file size for a model of `params_b` billion parameters."""
        return params_b * 1e9 * self.bits_per_weight / 8


GGUF_TYPES: dict[str, GgufType] = {t.name: t for t in (
    GgufType("f32", 32.0, True),
    GgufType("f16", 16.0, True, "lossless, largest"),
    GgufType("bf16", 16.0, True),
    GgufType("q8_0", 8.5, True, "near-lossless, half of f16"),
    GgufType("q6_k", 6.56, False, "very close"),
    GgufType("q5_k_m", 5.69, False, "close, smaller"),
    GgufType("q5_k_s", 5.54, False),
    GgufType("q5_1", 6.0, False),
    GgufType("q5_0", 5.5, False),
    GgufType("q4_k_m", 4.89, False, "the usual size/quality trade"),
    GgufType("q4_k_s", 4.58, False),
    GgufType("q4_1", 5.0, False),
    GgufType("q4_0", 4.5, False, "small, older format"),
    GgufType("q3_k_m", 3.91, False),
    GgufType("q2_k", 3.35, False),
)}
"""Every type, the converter's first, then libllama's from largest to smallest."""
DEFAULT_TYPES = ("q8_0", "q4_k_m")
"""What `tuneforge export` writes when no type is named."""


def parse_gguf_types(text: str) -> list[str]:
    """`q8_0, Q4_K_M` → ["q8_0", "q4_k_m"], validated before any work starts (an ExportError names unknown ones)."""
    from tuneforge.core.errors import ExportError

    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GGUF_TYPES]
    if unknown or not names:
        raise ExportError(f"unknown GGUF type(s): {', '.join(unknown) or '(none given)'}", f"choose from {', '.join(GGUF_TYPES)}")
    return list(dict.fromkeys(names))


def file_gb(params_b: float, name: str) -> float:
    """The estimated size in GiB of a `name` GGUF of a model with `params_b` billion parameters."""
    return GGUF_TYPES[name].file_bytes(params_b) / GIB
