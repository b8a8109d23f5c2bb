"""What progressive shrinking buys and costs: the demo run's SmolLM2-135M (30 layers) shrunk to 24, 20
and 16 layers, stage by stage and in one shot, each exported to q8_0 and asked the demo's facts.

    python bench/shrink.py                          # trains the demo run first (its run dir under --out)
    python bench/shrink.py --source RUN_DIR         # a finished, merged demo run

Progressive is one `tuneforge shrink` with `--stages 24,20,16` (each stage healed for the default 3
epochs by distillation from the stage before, on the data and the teacher's answers to the general
prompts; `--general-prompts 0` heals on the data only); one shot removes all the layers at once
(`--stages T`) and heals with the same number of steps the progressive stages took to get there.
Per row: parameters, the q8_0 GGUF's size, llama.cpp's greedy generation speed (128 tokens, the
median of 3, each file in its own process), how many of the 12 demo facts the GGUF answers
(greedy, the answer contains the expected word), and the forgetting probe's general-text
perplexity. The baseline is the unshrunk demo run. Aims (issue 21), at 20 layers: ≥ 10 of 12 facts,
the GGUF ≥ 25 % smaller and ≥ 1.3× faster, progressive no worse than one shot. The README
(progressive shrinking) has the last run's table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GENERATED_TOKENS = 128
REPEATS = 3


@dataclass
class Row:
    """One model's figures."""

    label: str
    layers: int
    parameters: int
    gguf_mib: float
    tokens_per_second: float
    facts: int
    """Demo facts the GGUF answers."""
    perplexity: float | None
    steps: int
    failed_checks: list[str]
    """The verification checks the q8_0 file failed (chat: a greeting that did not end its turn)."""


def generation_speed(path: Path) -> float:
    """In this process: the median greedy generation speed of the GGUF at `path`, in tokens per second."""
    from tuneforge.exporters.gguf.native import open_llama

    speeds = []
    with open_llama(path, n_ctx=GENERATED_TOKENS + 32, seed=0) as llm:
        prompt = llm.tokenize(b"Tell me about the town of Brindlewick.")
        for _ in range(REPEATS):
            llm.reset()
            llm.eval(prompt)
            start = time.perf_counter()
            for _ in range(GENERATED_TOKENS):
                llm.eval([int(llm.scores[llm.n_tokens - 1].argmax())])
            speeds.append(GENERATED_TOKENS / (time.perf_counter() - start))
    return statistics.median(speeds)


def speed_in_child(path: Path) -> float:
    """`generation_speed` in its own process, so a crash in llama.cpp cannot end the benchmark."""
    done = subprocess.run([sys.executable, __file__, "--speed", str(path)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{path}: llama.cpp failed ({done.returncode}): {done.stderr[-500:]}")
    return float(done.stdout.strip().splitlines()[-1])


def facts_answered(gguf: Path) -> int:
    """How many of the demo's 12 facts the GGUF answers (greedy; the answer contains the expected word),
    asked as `tuneforge demo` asks them, whether or not the file passed every verification check."""
    from tuneforge.core.answer_scores import contains_reference
    from tuneforge.core.chat import load_chat_model
    from tuneforge.core.demo import ANSWER_TOKENS, demo_probes

    chat = load_chat_model(gguf)
    try:
        return sum(contains_reference(chat.reply([{"role": "user", "content": q["question"]}], ANSWER_TOKENS).text, q["expect"])
                   for q in demo_probes())
    finally:
        chat.close()


def measure(run_dir: Path, label: str, layers: int, perplexity: float | None, steps: int) -> Row:
    """Export the run to q8_0 (verified), time its generation, and ask its GGUF the demo facts."""
    from tuneforge.core.api import export as export_api
    from tuneforge.core.shrink.layers import checkpoint_parameters

    exported = export_api.export(run_dir, ["q8_0"], echo=None)
    verification = exported.verifications[0]
    gguf = Path(verification.file)
    failed = [c.name for c in verification.checks if not c.passed]
    row = Row(label, layers, checkpoint_parameters(run_dir / "merged") or 0, gguf.stat().st_size / 2**20,
              speed_in_child(gguf), facts_answered(gguf), perplexity, steps, failed)
    print(f"    {label}: {row.layers} layers, {row.gguf_mib:.0f} MiB, {row.tokens_per_second:.1f} tok/s, "
          f"{row.facts}/12 facts, verification {'passed' if not failed else 'failed: ' + ', '.join(failed)}", flush=True)
    return row


def table(rows: list[Row]) -> str:
    """The rows against the unshrunk baseline (the first row)."""
    base = rows[0]
    header = ["model", "layers", "params", "q8_0 MiB", "smaller", "tok/s", "faster", "facts", "perplexity", "heal steps", "verified"]
    lines = [header]
    for r in rows:
        lines.append([r.label, str(r.layers), f"{r.parameters / 1e6:.1f} M", f"{r.gguf_mib:.0f}",
                      f"{100 * (1 - r.gguf_mib / base.gguf_mib):.0f} %", f"{r.tokens_per_second:.1f}",
                      f"{r.tokens_per_second / base.tokens_per_second:.2f}×", f"{r.facts}/12",
                      f"{r.perplexity:.2f}" if r.perplexity is not None else "–", str(r.steps) if r.steps else "",
                      "yes" if not r.failed_checks else "no: " + ", ".join(r.failed_checks)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="a finished, merged demo run (default: train one)")
    parser.add_argument("--out", type=Path, default=Path("bench-shrink"))
    parser.add_argument("--targets", default="24,20,16", help="layer counts, largest first")
    parser.add_argument("--one-shot", default=None, help="the targets also shrunk in one shot (default: every target)")
    parser.add_argument("--general-prompts", type=int, default=None,
                        help="general prompts each stage also distils (default: the shrink's, all 60; 0 = the data only)")
    parser.add_argument("--speed", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.speed:
        print(generation_speed(args.speed))
        return 0

    from tuneforge.core.api import shrink as shrink_api
    from tuneforge.core.demo import run_demo
    from tuneforge.core.quiet import quiet_libraries
    from tuneforge.core.runs import RunDir
    from tuneforge.core.shrink.job import model_layers

    quiet_libraries()
    healing = {"distill_general": args.general_prompts} if args.general_prompts is not None else None
    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    source = args.source or run_demo(out / "demo", echo=None).run_dir
    targets = [int(t) for t in args.targets.split(",")]
    finished = RunDir(source).history().finished
    assert finished is not None and finished.result is not None, f"{source}: not a finished run"
    layers = model_layers(RunDir(source).merged)
    rows = [measure(source, "unshrunk", layers, finished.result.general_perplexity_after, 0)]

    print(f"--- progressive: {' → '.join(map(str, [layers, *targets]))}", flush=True)
    progressive = shrink_api.shrink(str(source), stages=targets, run_dir=out / "progressive", echo=None,
                                   settings=healing)
    budget = 0
    for event in progressive.finished_stages():
        budget += event.steps
        rows.append(measure(progressive.stage(event.stage).path, f"progressive {event.layers}", event.layers,
                            event.perplexity, budget))
    one_shot_targets = [int(t) for t in args.one_shot.split(",")] if args.one_shot else targets
    for target, row in zip(targets, rows[1:], strict=True):
        if target not in one_shot_targets:
            continue
        print(f"--- one shot: {layers} → {target}, {row.steps} healing steps", flush=True)
        one_shot = shrink_api.shrink(str(source), stages=[target], max_steps=row.steps, run_dir=out / f"one-shot-{target}",
                                  echo=None, settings=healing)
        event = one_shot.finished_stages()[0]
        rows.append(measure(one_shot.stage(1).path, f"one shot {target}", target, event.perplexity, event.steps))
    print()
    print(table(rows))
    print("\nsmaller / faster: against the unshrunk q8_0 file. heal steps: the healing steps it took from the unshrunk model "
          "(progressive: every stage so far). Aims at 20 layers: ≥ 10/12 facts, ≥ 25 % smaller, ≥ 1.3× faster, "
          "progressive no worse than one shot.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
