"""Vocabulary-only GGUFs from llama-cpp-python's source distribution, which the tests use as real tokenizers.

`make test` fetches them once, before pytest starts (`python -m tests.vocabularies`), into the virtual
environment beside llama.cpp's converter; the fixtures only read them, so no test waits on pip.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

LLAMA_CPP_VOCABS = ("qwen2", "llama-spm", "llama-bpe", "phi-3", "qwen35", "gemma-4")
"""The families whose vocabularies the tests read."""


def vocab_dir() -> Path:
    """Where the vocabularies are kept: beside this Python's llama.cpp converter, named by llama-cpp-python's version."""
    from tuneforge.exporters.gguf.llama_cpp import converter_dir

    return converter_dir().with_name(f"{converter_dir().name}-vocab")


def vocab_file(name: str) -> Path:
    """The vocabulary-only GGUF of family `name`."""
    return vocab_dir() / f"ggml-vocab-{name}.gguf"


def missing() -> list[str]:
    """The families whose vocabulary has not been fetched."""
    return [name for name in LLAMA_CPP_VOCABS if not vocab_file(name).is_file()]


def fetch() -> Path:
    """Take the vocabularies out of the installed llama-cpp-python's source distribution (pip reuses its cached
    download); returns their folder."""
    from tuneforge.exporters.gguf.llama_cpp import download_source_distribution, extract, llama_cpp_python_version

    target = vocab_dir()
    if not missing():
        return target
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        archive = download_source_distribution(llama_cpp_python_version(), folder)
        extract(archive, [f"models/ggml-vocab-{name}.gguf" for name in LLAMA_CPP_VOCABS], folder)
        target.mkdir(parents=True, exist_ok=True)
        for name in LLAMA_CPP_VOCABS:
            (folder / "models" / f"ggml-vocab-{name}.gguf").replace(vocab_file(name))
    return target


if __name__ == "__main__":
    print(f"the tests' vocabularies are in {fetch()}", file=sys.stderr)
