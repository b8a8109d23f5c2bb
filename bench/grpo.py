"""GRPO on the built-in model: tuneforge against a plain TRL GRPO script, on small sums the base often gets wrong.

    python bench/grpo.py                     # SmolLM2-135M-Instruct on this machine, 30 steps a side
    python bench/grpo.py --steps 60 --model PATH

The task: "What is 23 + 58? Reply with the number only." The rewards, the same on both sides: the answer's last
number is the sum (numeric), and the answer is a number alone (regex ^-?\\d+$, the format). Both sides train LoRA
(rank 16, alpha 32, every linear layer) with the same learning rate, KL weight, group size (4), answer budget
(32 tokens), batch (8 answers a step), seed and number of steps, each in its own process (so each peak memory is
its own). The plain side is the script a person writes from TRL's GRPO documentation: GRPOConfig, peft's
LoraConfig, two reward functions. tuneforge's side is `tuneforge train --method grpo` as a person runs it
(create_run, then the training child), with `--reward numeric --reward "regex:^-?\\d+$"`.

Printed per side: before and after, over 48 held-out sums answered greedily: accuracy (the right number), format
(a number alone) and the mean reward; then seconds per step (sampling, scoring and the update; the first step left
out), peak memory (RSS on a CPU, CUDA allocation on a GPU; tuneforge's planned figure beside it) and the training's
wall time (tuneforge's includes starting its child process and loading the model there).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "What is {a} + {b}? Reply with the number only."
FORMAT = r"^\s*-?\d+\s*$"
SIDES = ("plain", "tuneforge")


def sums(count: int, seed: int) -> list[tuple[str, str]]:
    """`count` two-digit sums as (question, answer), reproducibly for a seed."""
    rng = random.Random(seed)
    pairs = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(count)]
    return [(PROMPT.format(a=a, b=b), str(a + b)) for a, b in pairs]


def score(answers: list[str], references: list[str]) -> dict[str, float]:
    """Accuracy (the last number is the sum), format (a number alone) and their mean reward, over the answers."""
    from tuneforge.core.rewards import last_number

    right = [last_number(a) == float(r) for a, r in zip(answers, references, strict=True)]
    formatted = [bool(re.match(FORMAT, a)) for a in answers]
    return {"accuracy": sum(right) / len(right), "format": sum(formatted) / len(formatted),
            "reward": (sum(right) + sum(formatted)) / len(right)}


def greedy_answers(model: Any, tokenizer: Any, questions: list[str]) -> list[str]:
    """The model's greedy answers (batched, as tuneforge's probes answer)."""
    from tuneforge.core.replies import generate_replies

    return [r.text for r in generate_replies(model, tokenizer, [[{"role": "user", "content": q}] for q in questions], 32)]


def peak_memory_gb() -> float:
    """Peak CUDA allocation on a GPU, peak RSS on a CPU."""
    from tuneforge.core.train.callbacks import peak_memory_gb as recorded

    return recorded()


def plain_side(model_path: str, train: list[tuple[str, str]], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The script from TRL's GRPO documentation, with LoRA: what a person writes without tuneforge."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    def numeric(completions: list[Any], answer: list[str], **kwargs: Any) -> list[float]:
        found = [re.findall(r"-?\d+", c[0]["content"]) for c in completions]
        return [float(bool(f) and f[-1] == a) for f, a in zip(found, answer, strict=True)]

    def number_only(completions: list[Any], **kwargs: Any) -> list[float]:
        return [float(bool(re.match(FORMAT, c[0]["content"]))) for c in completions]

    step_times: list[float] = []

    class Meter(TrainerCallback):
        def on_log(self, targs: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                step_times.append(time.time())

    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": q}], "answer": a} for q, a in train])
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if args.bf16 else torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    config = GRPOConfig(output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=8, num_generations=4,
                        max_completion_length=32, learning_rate=args.lr, beta=args.beta, logging_steps=1, seed=42,
                        temperature=args.temperature,
                        report_to=[], save_strategy="no", bf16=args.bf16, use_cpu=not torch.cuda.is_available(),
                        disable_tqdm=True)
    trainer = GRPOTrainer(model=model, reward_funcs=[numeric, number_only], args=config, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"),
                          callbacks=[Meter()])
    trainer.train()
    return {"step_times": step_times, "peak_gb": peak_memory_gb(), "model": trainer.model, "tokenizer": tokenizer}


def tuneforge_side(model_path: str, train: list[tuple[str, str]], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """`tuneforge train --method grpo` as a person runs it: the run created, trained in its child process."""
    from peft import PeftModel

    from tuneforge.core.api import runs as runs_api
    from tuneforge.core.config import RunConfig
    from tuneforge.core.language_model import load_language_model
    from tuneforge.core.train.setup import load_tokenizer

    data = out / "sums.jsonl"
    data.write_text("".join(json.dumps({"prompt": q, "completion": a}) + "\n" for q, a in train), encoding="utf-8")
    config = RunConfig(model=model_path, data=str(data), method="grpo", rewards=["numeric", f"regex:{FORMAT}"], max_steps=args.steps,
                       batch_size=8, num_generations=4, max_completion_length=32, learning_rate=args.lr, beta=args.beta,
                       lora_r=16, lora_alpha=32, seed=42, forgetting_probe=False, sample_temperature=args.temperature)
    run = runs_api.create_run(config, out / "run")
    result = runs_api.train(run.path, echo=None)
    steps = run.history().steps
    import torch

    tokenizer = load_tokenizer(model_path)
    base = load_language_model(model_path, dtype=torch.bfloat16 if args.bf16 else torch.float32)
    return {"step_times": [s.time for s in steps], "peak_gb": result.peak_memory_gb, "planned_gb": result.planned_peak_gb,
            "model": PeftModel.from_pretrained(base, run.adapter), "tokenizer": tokenizer}


def one_side(side: str, args: argparse.Namespace) -> None:
    """Run one side in this process and print its JSON line."""
    import torch

    from tuneforge.core.language_model import load_language_model
    from tuneforge.core.quiet import quiet_libraries
    from tuneforge.core.train.setup import load_tokenizer

    quiet_libraries()
    torch.manual_seed(42)
    out = Path(args.work) / side
    out.mkdir(parents=True, exist_ok=True)
    train, held_out = sums(args.prompts, 1), sums(48, 2)
    questions, references = [q for q, _ in held_out], [a for _, a in held_out]
    tokenizer = load_tokenizer(args.model)
    base = load_language_model(args.model, dtype=torch.bfloat16 if args.bf16 else torch.float32)
    before = score(greedy_answers(base, tokenizer, questions), references)
    del base
    started = time.perf_counter()
    trained = (plain_side if side == "plain" else tuneforge_side)(args.model, train, args, out)
    seconds = time.perf_counter() - started
    marks = trained["step_times"]
    per_step = (marks[-1] - marks[0]) / (len(marks) - 1) if len(marks) > 1 else float("nan")
    after = score(greedy_answers(trained["model"], trained["tokenizer"], questions), references)
    print(json.dumps({"side": side, "before": before, "after": after, "step_s": per_step, "seconds": seconds,
                      "peak_gb": trained["peak_gb"], "planned_gb": trained.get("planned_gb")}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a model folder (default: the built-in model)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--prompts", type=int, default=64, help="training sums")
    parser.add_argument("--lr", type=float, default=None, help="default: tuneforge's GRPO rate")
    parser.add_argument("--beta", type=float, default=None, help="default: tuneforge's GRPO KL weight")
    parser.add_argument("--temperature", type=float, default=None, help="default: tuneforge's GRPO sampling temperature")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one outside the checkout)")
    parser.add_argument("--sides", default=",".join(SIDES), help="which sides, comma-separated (default: both)")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from tuneforge.core.config import RunConfig
    from tuneforge.core.hardware import detect
    from tuneforge.core.methods import method_spec
    from tuneforge.core.models import resolve_model

    args.model = args.model or str(resolve_model("default").path)
    args.lr = args.lr or method_spec("grpo").learning_rate
    args.beta = args.beta if args.beta is not None else method_spec("grpo").beta
    args.bf16 = detect().compute_dtype == "bfloat16"
    args.temperature = args.temperature or RunConfig.model_fields["sample_temperature"].default
    if args.side:
        one_side(args.side, args)
        return
    import tempfile

    args.work = args.work or tempfile.mkdtemp(prefix="tuneforge-bench-grpo-")
    rows = []
    sides = [side.strip() for side in args.sides.split(",")]
    if not set(sides) <= set(SIDES):
        parser.error(f"--sides: choose from {', '.join(SIDES)}")
    for side in sides:
        command = [sys.executable, __file__, "--side", side, "--model", args.model, "--steps", str(args.steps),
                   "--prompts", str(args.prompts), "--lr", str(args.lr), "--beta", str(args.beta), "--temperature", str(args.temperature),
                   "--work", args.work]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TUNEFORGE_HOME": f"{args.work}/home"})
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            print(f"{side}: failed\n{done.stderr[-3000:]}")
            continue
        rows.append(json.loads(lines[-1]))
    print(f"\nGRPO, {Path(args.model).name}: {args.steps} steps, lr {args.lr:g}, beta {args.beta:g}, temperature {args.temperature:g}, "
          "group 4, 32-token answers, "
          f"batch 8, {args.prompts} training sums, 48 held-out\n")
    print("| side | accuracy before → after | format before → after | reward before → after | s/step | peak memory | planned | train time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        b, a = row["before"], row["after"]
        planned = f"{row['planned_gb']:.2f} GB" if row.get("planned_gb") else "–"
        print(f"| {row['side']} | {b['accuracy']:.0%} → {a['accuracy']:.0%} | {b['format']:.0%} → {a['format']:.0%} | "
              f"{b['reward']:.2f} → {a['reward']:.2f} | {row['step_s']:.2f} | {row['peak_gb']:.2f} GB | {planned} | {row['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
