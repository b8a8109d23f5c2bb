"""tuneforge's export, verification included, against llama.cpp's converter run alone.

    python bench/export.py                 # the built-in default model and a tiny random Qwen3.5
    python bench/export.py --model PATH    # any HF model folder instead of the default

Both sides write one f16 GGUF of the same HF folder. The baseline is `convert_hf_to_gguf.py` as a
person runs it by hand; tuneforge's side is `tuneforge export --quant f16` as a person runs it:
the same converter in a child process, then the reference logits from transformers and the
verification of the file in llama.cpp (loads, tokenizer, logits, perplexity, chat). Printed per
model: wall seconds of each side, the peak memory of its largest process, and tuneforge's time as
a multiple of the converter's. The aim is at most 1.5× for the default model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MEASURE = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)")
"""Runs a command and prints the peak RSS (KiB) of its largest process and its exit code: a fresh parent per side,
because RUSAGE_CHILDREN's figure only grows."""


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak GB of the largest process) of `command` run to completion."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=False,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    seconds = time.perf_counter() - start
    peak_kib, code = (int(value) for value in done.stdout.strip().splitlines()[-1].split())
    if code not in (0, 6):  # 6: a random tiny model fails the chat check; the file is still written and verified
        sys.exit(f"{' '.join(command[:4])} … failed ({code}):\n{done.stderr[-2000:]}")
    return seconds, peak_kib / 2**20


def tiny_qwen3_5(folder: Path) -> Path:
    """A tiny random Qwen3.5 (the tests' builder) with the Qwen3.5 vocabulary from llama-cpp-python's sdist."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from transformers import AutoTokenizer

    from tests.conftest import build_tiny_model
    from tuneforge.exporters.gguf.llama_cpp import download_source_distribution, extract, llama_cpp_python_version

    vocabulary = folder / "models" / "ggml-vocab-qwen35.gguf"
    archive = download_source_distribution(llama_cpp_python_version(), folder)
    extract(archive, ["models/ggml-vocab-qwen35.gguf"], folder)
    tokenizer = folder / "qwen35-tokenizer"
    AutoTokenizer.from_pretrained(vocabulary.parent, gguf_file=vocabulary.name).save_pretrained(tokenizer)
    return build_tiny_model("qwen3_5", tokenizer, folder / "tiny-qwen3_5", layers=4)


def sides(model: Path, work: Path) -> dict[str, tuple[float, float]]:
    """Both sides on one model folder."""
    from tuneforge.exporters.gguf.llama_cpp import require_converter

    converter = require_converter() / "convert_hf_to_gguf.py"
    work.mkdir(parents=True, exist_ok=True)
    alone = [sys.executable, str(converter), str(model), "--outfile", str(work / "alone-f16.gguf"), "--outtype", "f16"]
    if "qwen3_5" in model.name:
        alone.append("--no-mtp")
    tuneforge = [sys.executable, "-m", "tuneforge.core.cli", "export", str(model), "--quant", "f16", "--out", str(work / "tuneforge")]
    return {"converter alone": timed(alone), "tuneforge export + verify": timed(tuneforge)}


def main() -> None:
    """Run both sides on each model and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a HF model folder (default: the built-in model, then a tiny Qwen3.5)")
    args = parser.parse_args()
    from tuneforge.core.models import resolve_model

    work = Path(tempfile.mkdtemp(prefix="tuneforge-bench-export-"))
    try:
        models = [args.model] if args.model else [resolve_model("default").path, tiny_qwen3_5(work)]
        print(f"{'model':<40}{'side':<28}{'seconds':>9}{'peak GB':>9}{'× converter':>13}")
        for model in models:
            figures = sides(model, work / model.name)
            baseline = figures["converter alone"][0]
            for side, (seconds, peak) in figures.items():
                print(f"{model.name[:39]:<40}{side:<28}{seconds:>9.1f}{peak:>9.2f}{seconds / baseline:>12.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
