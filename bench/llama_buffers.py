"""What the AMX workaround costs: llama.cpp's speed with and without its extra weight buffers.

    python bench/llama_buffers.py                 # the default model at q8_0 and q4_k_m, on this CPU
    python bench/llama_buffers.py --repeats 5

tuneforge loads every GGUF with `use_extra_bufts = False` on CPUs that report AMX (their AMX
buffers trap with SIGILL in llama-cpp-python 0.3.36) and with llama.cpp's default elsewhere.
The extra buffers are also where llama.cpp repacks q4 weights for faster CPU kernels, so
turning them off can cost speed. This benchmark converts the built-in default model to q8_0
and q4_k_m and measures, for each file and each setting, prompt processing and greedy
generation in tokens per second, each measurement in its own child process
(TUNEFORGE_LLAMA_EXTRA_BUFTS set to 1 or 0); a setting that crashes llama.cpp on this CPU is
reported as such. The baseline is llama.cpp's default (extra buffers on).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT_TOKENS = 256
GENERATED_TOKENS = 64


def measure(path: Path, repeats: int) -> dict[str, float]:
    """In this process: the median prompt and generation speed of `path` over `repeats` tries."""
    from tuneforge.exporters.gguf.native import extra_buffers_allowed, open_llama

    prompt, generation = [], []
    with open_llama(path, n_ctx=PROMPT_TOKENS + GENERATED_TOKENS + 8, seed=0) as llm:
        assert llm.model_params.use_extra_bufts is extra_buffers_allowed()
        tokens = [(7 * i) % 1000 + 100 for i in range(PROMPT_TOKENS)]
        for _ in range(repeats):
            llm.reset()
            start = time.perf_counter()
            llm.eval(tokens)
            prompt.append(PROMPT_TOKENS / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(GENERATED_TOKENS):
                llm.eval([int(llm.scores[llm.n_tokens - 1].argmax())])
            generation.append(GENERATED_TOKENS / (time.perf_counter() - start))
    return {"prompt": statistics.median(prompt), "generation": statistics.median(generation)}


def measure_in_child(path: Path, extra_buffers: bool, repeats: int) -> dict[str, float] | str:
    """`measure` in a child process with the setting forced; the crash's signal name when llama.cpp dies."""
    env = {**os.environ, "TUNEFORGE_LLAMA_EXTRA_BUFTS": "1" if extra_buffers else "0"}
    done = subprocess.run([sys.executable, __file__, "--measure", str(path), "--repeats", str(repeats)],
                          capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        return f"crashed ({done.returncode})" if done.returncode > 0 else f"crashed (signal {-done.returncode})"
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_files(folder: Path) -> dict[str, Path]:
    """The default model as q8_0 (the converter) and q4_k_m (libllama, from f16)."""
    from tuneforge.core.models import resolve_model
    from tuneforge.exporters.gguf.convert import convert
    from tuneforge.exporters.gguf.quantize import quantize

    model = resolve_model("default").path
    f16 = convert(model, folder / "default-f16.gguf", "f16")
    return {"q8_0": convert(model, folder / "default-q8_0.gguf", "q8_0"),
            "q4_k_m": quantize(f16, folder / "default-q4_k_m.gguf", "q4_k_m")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats)))
        return

    from tuneforge.core.hardware import cpu_has_amx
    from tuneforge.core.quiet import quiet_libraries
    from tuneforge.exporters.gguf.native import extra_buffers_allowed

    quiet_libraries()

    os.environ.pop("TUNEFORGE_LLAMA_EXTRA_BUFTS", None)
    print(f"CPU reports AMX: {'yes' if cpu_has_amx() else 'no'}; tuneforge loads with extra buffers "
          f"{'on' if extra_buffers_allowed() else 'off'} here")
    print(f"{'type':<8} {'extra buffers':<14} {'prompt tok/s':>13} {'gen tok/s':>10} {'prompt ×':>9} {'gen ×':>7}")
    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-") as folder:
        for qtype, path in build_files(Path(folder)).items():
            baseline = measure_in_child(path, True, args.repeats)
            for extra_buffers in (True, False):
                found = baseline if extra_buffers else measure_in_child(path, False, args.repeats)
                label = "on (default)" if extra_buffers else "off"
                if isinstance(found, str):
                    print(f"{qtype:<8} {label:<14} {found:>13}")
                    continue
                ratios = ("", "") if isinstance(baseline, str) else (
                    f"{found['prompt'] / baseline['prompt']:.2f}", f"{found['generation'] / baseline['generation']:.2f}")
                print(f"{qtype:<8} {label:<14} {found['prompt']:>13.0f} {found['generation']:>10.1f} {ratios[0]:>9} {ratios[1]:>7}")


if __name__ == "__main__":
    main()
