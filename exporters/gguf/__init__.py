"""HF checkpoint → GGUF: convert (pure Python, `gguf` package), quantize (libllama), verify."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import gguf


@contextlib.contextmanager
def atomic_gguf_writer(out_file: Path, arch: gguf.MODEL_ARCH) -> Iterator[gguf.GGUFWriter]:
    """A GGUFWriter on a temporary name beside `out_file`, renamed into place when the block succeeds.

    On any error, Ctrl-C or a full disk the temporary file is removed: no half-written .gguf.
    """
    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(f".{out_file.name}.partial")
    writer = gguf.GGUFWriter(partial, arch=gguf.MODEL_ARCH_NAMES[arch])
    try:
        yield writer
        writer.close()
        os.replace(partial, out_file)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
