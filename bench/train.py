"""tuneforge against a plain TRL SFTTrainer + peft script: same model, data, LoRA and batch.

    python bench/train.py                          # the default model on a CPU, shipped Brindlewick data
    python bench/train.py --random-shape 0.5b      # a random-weight Qwen2.5-0.5B-shaped model (on a GPU)
    python bench/train.py --model PATH --steps 60
    python bench/train.py --random-shape llama-3.1-8b-4l --method qlora --synthetic 256 --steps 30   # the GPU QLoRA bench

Every side trains LoRA (rank 16, alpha 32, every linear layer) with the same learning rate,
schedule, seed, batch and number of optimizer steps, on the same conversations, with the
loss on the answers only; each side runs in its own process, so each peak memory is its own.
The plain side is the script a person writes from TRL's documentation: a prompt/completion
dataset, SFTConfig with the batch (and its default gradient checkpointing), and peft's
LoraConfig. tuneforge runs as it starts training (on tcmalloc when it is installed), once as it
trains by default (auto-fit decides checkpointing; padding-free batches on a GPU, padded ones on a
CPU) and once per lever, each the default with one thing changed: the other kind of batches
(padding-free: each micro-batch's examples end to end in one row), checkpointing forced on (the
plain side's memory regime), and for QLoRA the fp32 upcast tuneforge dropped (peft's k-bit
preparation, as tuneforge trained before). tuneforge trains without replay here (it would add the
base model's own answers to a small dataset), so that every side trains on the same conversations.

With `--method qlora` every side trains LoRA on a 4-bit nf4 base; the plain side loads it as TRL's QLoRA
documentation does (BitsAndBytesConfig, double quantization, bf16 compute). `llama-3.1-8b-4l` is Llama 3.1 8B's
widths and untied 128k vocabulary cut to four random layers, so that a step's LM head and embeddings weigh as
they do in the real model. `--synthetic N` trains on N generated conversations whose answers run from a few words
to a few hundred (seeded), so that batches carry the padding that real chats of varied length do.

Printed per side: non-padding tokens per second over the training steps (the first step,
which includes warm-up, left out), peak memory (torch.cuda.max_memory_allocated on a GPU,
peak RSS on a CPU), the mean loss of the last five steps, and utilisation: achieved FLOP/s
(4 × parameters × tokens/s, the forward and input-gradient matmuls of adapter training)
over the matmul peak measured on this machine; on a GPU also the peak reserved memory, and for tuneforge's
sides the planner's figure; the first step's loss, which every side should share (a parity check); the weights
by dtype as each side trained them. Then the ratios against the plain side. A side that fails is reported
with the end of its output, and the others still run.

`--sides "plain;tuneforge, padded"` runs those sides alone, in that order. Each side's JSON line also holds every
step's seconds and tokens, so warm-up stalls can be told from steady speed.

On a GPU machine with no package index and no hub (how it was run, on an H200): the packages it lacks travel as
wheels for its Python (`pip download --no-deps --only-binary=:all: --python-version 3.12 --platform
manylinux2014_x86_64 ...`: transformers, peft, trl, accelerate, datasets, bitsandbytes, huggingface_hub and what they
import, plus tuneforge's own wheel), installed with `pip install --no-index --no-deps --target DIR` and found through
PYTHONPATH; the model is built there from its shape on the GPU, with `--tokenizer` naming a tokenizer folder carried
along; and every side runs with `USE_HUB_KERNELS=0 HF_HUB_OFFLINE=1`, so that the plain script too runs on the
kernels installed there (tuneforge asks transformers for no hub kernels; by default transformers fetches RMSNorm and
rotary kernels from the hub as a model loads on CUDA, and without the `kernels` package it refuses to load):

    USE_HUB_KERNELS=0 HF_HUB_OFFLINE=1 python bench/train.py --random-shape llama-3.1-8b-4l --tokenizer TOKENIZER \
        --method qlora --synthetic 512 --steps 60     # about 4 minutes on an H200, the model's build included
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from methods import SHAPES, random_model

from tuneforge.core.allocator import training_environment

LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0)
LEVERS: dict[str, dict[str, bool]] = {
    "tuneforge": {},
    "tuneforge, padded": {"padding_free": False},
    "tuneforge, padding-free": {"padding_free": True},
    "tuneforge, checkpointing": {"checkpointing": True},
    "tuneforge, fp32 upcast": {"upcast": True},
}
"""tuneforge's sides: its default, then the default with one lever moved (the batches, checkpointing, the upcast)."""
SIDES = ("plain", *LEVERS)


def sides_to_run(method: str, cuda: bool) -> list[str]:
    """The sides that differ from one another here: the batching lever that is already the default is left out
    (padding-free on a GPU, padded on a CPU), and the upcast is QLoRA's alone."""
    default_batching = "tuneforge, padding-free" if cuda else "tuneforge, padded"
    return [side for side in SIDES if side != default_batching and (method == "qlora" or side != "tuneforge, fp32 upcast")]


LEARNING_RATE = 1e-3


def step_meter() -> Any:
    """A TrainerCallback timing each optimizer step and counting its non-padding tokens."""
    import torch
    from transformers import TrainerCallback

    class StepMeter(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.tokens: list[int] = []
            self.losses: list[float] = []
            self._started = 0.0
            self._seen = 0

        def _sync(self) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._sync()
            self._started, self._seen = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._sync()
            self.seconds.append(time.perf_counter() - self._started)
            self.tokens.append(state.num_input_tokens_seen - self._seen)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))

        def summary(self) -> dict[str, float]:
            tokens, seconds = sum(self.tokens[1:]), sum(self.seconds[1:])  # step 1 includes warm-up
            last = self.losses[-5:]
            return {"tokens_per_second": tokens / seconds, "final_loss": sum(last) / len(last), "first_loss": self.losses[0],
                    "steps": len(self.seconds), "step_seconds": [round(t, 4) for t in self.seconds], "step_tokens": self.tokens}

    return StepMeter()


def peak_memory_gb() -> float:
    """Peak CUDA allocation on a GPU, peak RSS on a CPU: what tuneforge's runs record."""
    from tuneforge.core.train.callbacks import peak_memory_gb as recorded

    return recorded()


def peak_reserved_gb() -> float | None:
    """What PyTorch's CUDA allocator held at most (allocated plus its cache); None on a CPU."""
    import torch

    return torch.cuda.max_memory_reserved() / 2**30 if torch.cuda.is_available() else None


def conversations(data: Path) -> list[list[dict[str, str]]]:
    """The shipped data's conversations (system, user, assistant messages)."""
    return [json.loads(line)["messages"] for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]


def train_plain(model_path: str, data: Path, steps: int, batch: int, accum: int, out: Path, method: str = "lora") -> dict[str, Any]:
    """The plain script: TRL's SFTTrainer + peft (with bitsandbytes for qlora), as their documentation shows it."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tuneforge.core.train.setup import parameter_count

    cuda = torch.cuda.is_available()
    rows = [{"prompt": c[:-1], "completion": c[-1:]} for c in conversations(data)]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    quantization = None
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                          bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if cuda else torch.float32,
                                                 device_map={"": 0} if cuda else None, quantization_config=quantization)
    meter = step_meter()
    args = SFTConfig(output_dir=str(out / "plain"), max_steps=steps, per_device_train_batch_size=batch,
                     gradient_accumulation_steps=accum, learning_rate=LEARNING_RATE, lr_scheduler_type="cosine",
                     warmup_steps=0.05, logging_steps=1, save_strategy="no", report_to="none", seed=42,
                     bf16=cuda, use_cpu=not cuda, max_length=512, include_num_input_tokens_seen="non_padding",
                     disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=LoraConfig(**LORA, target_modules="all-linear", task_type="CAUSAL_LM"),
                         callbacks=[meter])
    trainer.train()
    return {**meter.summary(), "peak_gb": peak_memory_gb(), "reserved_gb": peak_reserved_gb(), "planned_gb": None,
            "dtypes": dtypes(trainer.model), "params": sum(parameter_count(p) for p in model.parameters())}


def dtypes(model: Any) -> str:
    """The dtypes the model's weights are held in, with how many weights each (4-bit ones as uint8 storage)."""
    from collections import Counter

    from tuneforge.core.train.setup import parameter_count

    counts = Counter()
    for parameter in model.parameters():
        counts[str(parameter.dtype).removeprefix("torch.")] += parameter_count(parameter)
    return ", ".join(f"{name} {count / 1e6:.0f}M" for name, count in counts.most_common())


def train_tuneforge(model_path: str, data: Path, steps: int, batch: int, accum: int, out: Path, method: str = "lora",
                    checkpointing: bool | None = None, padding_free: bool | None = None,
                    upcast: bool = False) -> dict[str, Any]:
    """The same job through tuneforge's own training path (`train_run`); `checkpointing` and `padding_free` None
    leave them to tuneforge, as a run does by default; `upcast` trains QLoRA as tuneforge did before it dropped
    peft's k-bit preparation (every weight that is not 4-bit in fp32)."""
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.config import RunConfig
    from tuneforge.core.train.runner import train_run

    config = RunConfig(model=model_path, data=str(data), method=method, max_steps=steps, batch_size=batch,
                       grad_accum=accum, learning_rate=LEARNING_RATE, lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"],
                       eval_split=0.0, early_stopping_patience=0, forgetting_probe=False, save_steps=steps, seed=42, replay=0,
                       gradient_checkpointing=checkpointing, padding_free=padding_free)
    run = create_run(config, out / f"tuneforge-{time.strftime('%H%M%S')}")
    if upcast:
        restore_kbit_upcast()
    meter, seen = step_meter(), dtypes_seen()
    result = train_run(run, echo=None, callbacks=[meter, seen])
    plan = run.history().plan
    return {**meter.summary(), "peak_gb": peak_memory_gb(), "reserved_gb": peak_reserved_gb(),
            "planned_gb": plan.peak_gb if plan else None, "dtypes": seen.dtypes, "params": result.total_params}


def dtypes_seen() -> Any:
    """A TrainerCallback that notes the dtypes of the model the trainer trains, as it starts."""
    from transformers import TrainerCallback

    class DtypesSeen(TrainerCallback):
        dtypes = ""

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.dtypes = dtypes(model)

    return DtypesSeen()


def restore_kbit_upcast() -> None:
    """Put back, in this process alone, what tuneforge's QLoRA did before: peft's k-bit preparation ahead of the
    adapter, which casts the embeddings, an untied head and every norm to fp32."""
    from peft import prepare_model_for_kbit_training

    from tuneforge.core.train import runner

    make_trainable = runner.make_trainable

    def upcast_then_make_trainable(base: Any, config: Any, model: Any, gradient_checkpointing: bool) -> Any:
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=gradient_checkpointing)
        return make_trainable(base, config, model, gradient_checkpointing)

    runner.make_trainable = upcast_then_make_trainable


WORDS = ("the river mill ledger harbour copper lantern orchard winter ferry market charter bridge school valley stone "
         "festival council weaver granary signal tower museum archive garden street north south east west old new "
         "records show that during each season its people kept careful notes about trade weather boats and bread").split()


def synthetic_chats(path: Path, count: int, seed: int = 0) -> Path:
    """`count` conversations whose questions run from 4 to 40 words and answers from 4 to about 300 (log-uniform, so
    short and long ones mix in every batch as real chats do), written to `path` as messages .jsonl."""
    import math
    import random

    rng = random.Random(seed)

    def sentence(low: int, high: int) -> str:
        length = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        return " ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + "."

    with path.open("w", encoding="utf-8") as out:
        for _ in range(count):
            chat = [{"role": "user", "content": sentence(4, 40)}, {"role": "assistant", "content": sentence(4, 300)}]
            out.write(json.dumps({"messages": chat}) + "\n")
    return path


def matmul_peak_flops() -> float:
    """The machine's dense matmul throughput (FLOP/s) in the dtype training computes in."""
    import torch

    cuda = torch.cuda.is_available()
    size, dtype = (8192, torch.bfloat16) if cuda else (1024, torch.float32)
    a = torch.randn(size, size, dtype=dtype, device="cuda" if cuda else "cpu")
    best = float("inf")
    for _ in range(5):
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(10):
            a @ a
        if cuda:
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - started) / 10)
    return 2 * size**3 / best


def child(args: argparse.Namespace) -> int:
    """One side, in this process; its figures go to stdout as one JSON line."""
    from tuneforge.core.quiet import quiet_libraries

    quiet_libraries(progress_bars=False)
    job = (args.model_path, args.data, args.steps, args.batch, args.grad_accum, args.out, args.method)
    if args.side == "plain":
        figures = train_plain(*job)
    else:
        figures = train_tuneforge(*job, **LEVERS[args.side])
    print("RESULT " + json.dumps(figures), flush=True)
    return 0


def run_side(side: str, model_path: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """Run one side in a child process and read its figures; None, with its output's end on stderr, when it failed."""
    command = [sys.executable, __file__, "--side", side, "--model-path", model_path, "--data", str(args.data),
               "--steps", str(args.steps), "--batch", str(args.batch), "--grad-accum", str(args.grad_accum),
               "--out", str(args.out), "--method", args.method]
    # tuneforge starts its training processes on tcmalloc when it is installed (core/allocator.py); a plain script does not.
    env = training_environment(os.environ) if side != "plain" else dict(os.environ)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        return None
    return json.loads(lines[-1].removeprefix("RESULT "))


def table(results: dict[str, dict[str, Any]], peak_flops: float) -> str:
    """Every side and its ratios to the plain side, one row each."""
    def gb(value: float | None) -> str:
        return f"{value:.2f}" if value is not None else "-"

    rows = [("side", "tokens/s", "peak GB", "reserved GB", "planned GB", "step-1 loss", "final loss", "achieved TFLOP/s",
             "utilisation")]
    for side, figures in results.items():
        achieved = 4 * figures["params"] * figures["tokens_per_second"]
        rows.append((side, f"{figures['tokens_per_second']:.1f}", gb(figures["peak_gb"]), gb(figures["reserved_gb"]),
                     gb(figures["planned_gb"]), f"{figures['first_loss']:.4f}", f"{figures['final_loss']:.4f}",
                     f"{achieved / 1e12:.3f}", f"{achieved / peak_flops:.1%}"))
    plain = results["plain"]
    for side, ours in results.items():
        if side != "plain":
            rows.append((f"{side} / plain", f"{ours['tokens_per_second'] / plain['tokens_per_second']:.2f}x",
                         f"{ours['peak_gb'] / plain['peak_gb']:.2f}x", "", "", f"{ours['first_loss'] - plain['first_loss']:+.4f}",
                         f"{ours['final_loss'] - plain['final_loss']:+.4f}", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--random-shape", choices=sorted(SHAPES))
    parser.add_argument("--tokenizer", help="tokenizer folder for --random-shape (default: the default model's)")
    parser.add_argument("--data", type=Path, help="a messages .jsonl (default: the shipped brindlewick.jsonl)")
    parser.add_argument("--synthetic", type=int, metavar="N", help="train on N generated conversations of varied length")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-train"))
    parser.add_argument("--method", choices=("lora", "qlora"), default="lora")
    parser.add_argument("--sides", help=f"a subset, separated by semicolons, in the order to run (default: all that differ here): "
                                         f"{'; '.join(SIDES)}")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.synthetic and not args.side:
        args.data = synthetic_chats(args.out / f"synthetic-{args.synthetic}.jsonl", args.synthetic)
    if args.data is None:
        from tuneforge.core.demo import demo_file

        args.data = demo_file("brindlewick.jsonl")
    if args.side:
        return child(args)
    chosen = [side.strip() for side in args.sides.split(";")] if args.sides else None
    if chosen and (unknown := [side for side in chosen if side not in SIDES]):  # said before the model is built
        parser.error(f"unknown side {', '.join(unknown)}: choose from {'; '.join(SIDES)}")
    from tuneforge.core.models import resolve_model
    from tuneforge.core.quiet import quiet_libraries

    quiet_libraries()
    if args.random_shape:
        model_path = random_model(args.random_shape, args.out / f"random-{args.random_shape}", args.tokenizer)
    else:
        model_path = str(resolve_model(args.model).path)
    import torch

    results, failed = {}, []
    for side in chosen or sides_to_run(args.method, torch.cuda.is_available()):
        print(f"--- {side}", flush=True)
        figures = run_side(side, model_path, args)
        print(f"    {json.dumps(figures) if figures else 'FAILED (its output is above)'}", flush=True)
        if figures:
            results[side] = figures
        else:
            failed.append(side)
    if "plain" not in results:
        raise SystemExit("the plain side failed: nothing to compare against")
    print()
    print(f"model {model_path} ({args.method}), {args.steps} steps, batch {args.batch} x {args.grad_accum}, data {args.data}")
    peak = matmul_peak_flops()
    print(table(results, peak))
    print("\nweights by dtype, as each side trained them:")
    for side, figures in results.items():
        print(f"  {side}: {figures['dtypes']}")
    print(f"\nmatmul peak on this machine: {peak / 1e12:.3f} TFLOP/s")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
