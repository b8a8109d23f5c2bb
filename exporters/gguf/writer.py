"""The one way tuneforge writes a GGUF file: through the `gguf` package's writer, atomically."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import gguf

from tuneforge.core.atomic import atomic_file


@contextlib.contextmanager
def atomic_gguf_writer(out_file: Path, arch: gguf.MODEL_ARCH) -> Iterator[gguf.GGUFWriter]:
    """A GGUFWriter on a temporary name beside `out_file`, renamed into place when the block succeeds.

    On any error, Ctrl-C or a full disk the temporary file is removed: no half-written .gguf,
    and a file already at `out_file` is kept.
    """
    with atomic_file(out_file) as partial:
        writer = gguf.GGUFWriter(partial, arch=gguf.MODEL_ARCH_NAMES[arch])
        try:
            yield writer
        finally:
            writer.close()
