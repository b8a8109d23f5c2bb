"""The memory planner's estimate against the peak each run records, over a grid of configurations.

    python bench/plan.py                       # the default model on this machine (CPU or GPU)
    python bench/plan.py --random-shape 0.5b   # a random-weight model of that shape (no model files):
                                               # 360m, 0.5b, 1.5b, gemma3-270m, qwen3-0.6b
    python bench/plan.py --only lora-b8-s512

Every row trains 3 steps of one configuration (auto-fit off, so the plan is of exactly that
configuration) in its own process, on examples of one length, so that every batch is the
planned worst case. The plan comes from the run's `plan` event, the measured peak
(torch.cuda.max_memory_allocated on a GPU, peak RSS on a CPU) from its `finished` event.
Target: every row within ±15 %.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from methods import SHAPES, random_model

GRID = (
    # method, batch, tokens per example, checkpointing every n-th layer (0: none; no replay: every row trains its own
    # data only)
    ("lora", 1, 128, 0),
    ("lora", 4, 256, 0),
    ("lora", 8, 256, 0),
    ("lora", 8, 512, 0),
    ("lora", 8, 512, 2),
    ("lora", 8, 512, 1),
    ("lora", 4, 1024, 1),
    ("dora", 4, 256, 0),
    ("ia3", 8, 256, 0),
    ("full", 4, 256, 0),
    ("freeze", 8, 256, 0),
    ("qlora", 4, 256, 0),
    ("prompt", 8, 256, 0),
    # grpo: 8 sampled answers a step (4 per prompt) of at most `tokens` each, to prompts that ask for long answers
    ("grpo", 8, 32, 0),
    ("grpo", 8, 96, 0),
)
WORDS = ("river stone lantern harbor meadow copper violet thunder garden pillow orbit maple candle "
         "falcon ribbon quartz willow cobalt saddle marble tunnel velvet beacon juniper").split()


def uniform_data(path: Path, tokens: int, tokenizer_dir: str, count: int = 32) -> Path:
    """`count` conversations whose chat-formatted length is `tokens` (± a few) tokens each."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rng = random.Random(0)
    lines = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(tokens)]
        while True:
            messages = [{"role": "user", "content": "Recite the list."}, {"role": "assistant", "content": " ".join(words)}]
            length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
            if length <= tokens or len(words) <= 1:
                break
            words = words[: max(1, len(words) - max(1, (length - tokens) // 2))]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def measure(row: tuple[str, int, int, int], model: str, tokenizer_dir: str, out: Path) -> dict[str, float] | None:
    """Train one configuration for 3 steps in a child process; its plan and measured peak."""
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.config import RunConfig
    from tuneforge.core.diagnosis import failure_cause

    method, batch, tokens, every = row
    if method == "grpo":  # the answers are sampled: prompts that ask for more than the budget, so each answer fills it
        data = out / "story-prompts.jsonl"
        data.write_text("".join(json.dumps({"prompt": f"Write a long story about a {word}."}) + "\n" for word in WORDS))
        settings: dict[str, object] = {"max_completion_length": tokens, "rewards": ["length:5-500"], "num_generations": 4}
    else:
        data = uniform_data(out / f"data-{tokens}.jsonl", tokens, tokenizer_dir)
        settings = {"max_length": tokens + 8, "early_stopping_patience": 0, "replay": 0}
    config = RunConfig(model=model, data=str(data), method=method, batch_size=batch, gradient_checkpointing=bool(every),
                       checkpoint_every=every or None, auto_fit=False, max_steps=3, save_steps=1000, eval_split=0.0,
                       forgetting_probe=False, **settings)
    run = create_run(config, out / f"{time.strftime('%H%M%S')}-{name(row)}")
    child = subprocess.run([sys.executable, "-m", "tuneforge.core.train", str(run.path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if child.returncode != 0:
        print(f"    FAILED: {' — '.join(failure_cause(run))}", flush=True)
        return None
    history = run.history()
    plan, result = history.plan, history.finished.result
    return {"planned": plan.peak_gb, "measured": result.peak_memory_gb, "parts": plan.parts, "allocator": plan.allocator}


def name(row: tuple[str, int, int, int]) -> str:
    """A row's short name, e.g. lora-b8-s512-ckpt (every layer) or lora-b8-s512-ckpt2 (every 2nd)."""
    method, batch, tokens, every = row
    return f"{method}-b{batch}-s{tokens}" + ("-ckpt" if every == 1 else f"-ckpt{every}" if every else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--random-shape", choices=sorted(SHAPES))
    parser.add_argument("--tokenizer", help="tokenizer folder for --random-shape (default: the default model's)")
    parser.add_argument("--only", help="comma-separated row names (e.g. lora-b8-s512,full-b4-s256)")
    parser.add_argument("--out", type=Path, default=Path("bench-plan"))
    args = parser.parse_args(argv)
    from tuneforge.core.models import resolve_model
    from tuneforge.core.quiet import quiet_libraries

    quiet_libraries()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.random_shape:
        model = random_model(args.random_shape, args.out / f"random-{args.random_shape}", args.tokenizer)
    else:
        model = str(resolve_model(args.model).path)
    wanted = set(args.only.split(",")) if args.only else None
    rows = []
    for row in GRID:
        if wanted and name(row) not in wanted:
            continue
        print(f"--- {name(row)}", flush=True)
        result = measure(row, model, model, args.out)
        if result:
            error = result["planned"] / result["measured"] - 1
            print(f"    planned {result['planned']:.2f} GB, measured {result['measured']:.2f} GB ({error:+.1%}), "
                  f"allocator {result['allocator'] or 'CUDA'}; "
                  f"{json.dumps(result['parts'])}", flush=True)
            rows.append((name(row), result["planned"], result["measured"], error))
    print(f"\nmodel {model}")
    print(f"{'configuration':<22} {'planned GB':>10} {'measured GB':>11} {'error':>7}")
    print(f"{'-' * 22} {'-' * 10} {'-' * 11} {'-' * 7}")
    for row_name, planned, measured, error in rows:
        flag = "" if abs(error) <= 0.15 else "  outside ±15%"
        print(f"{row_name:<22} {planned:>10.2f} {measured:>11.2f} {error:>+7.1%}{flag}")
    worst = max((abs(r[3]) for r in rows), default=0.0)
    print(f"\nworst error {worst:.1%} over {len(rows)} configurations (target ±15%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
