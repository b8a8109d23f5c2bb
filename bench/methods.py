"""Train every method on one model and dataset, then print `tuneforge compare` over the runs.

    python bench/methods.py                       # the default model on the shipped Brindlewick data
    python bench/methods.py --methods lora,dora   # a subset
    python bench/methods.py --random-shape 360m   # a randomly initialised model of that shape
                                                  # (speed and memory on a GPU without model files)

Every run gets the same step budget and batch, and early stopping is off, so the rows
compare like with like. SFT methods train on brindlewick.jsonl and are evaluated on
brindlewick-eval.jsonl; dpo, orpo and reward train on brindlewick-pairs.jsonl (the shipped
answers chosen over the base model's own made-up answers) with a quarter held out;
distill learns from the finished lora run's merged model as its teacher.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from tuneforge.core.api.runs import create_run, merge
from tuneforge.core.compare import compared_run, format_table
from tuneforge.core.config import RunConfig
from tuneforge.core.demo import demo_file
from tuneforge.core.diagnosis import failure_cause
from tuneforge.core.methods import METHODS
from tuneforge.core.quiet import quiet_libraries

SHAPES = {
    # (architecture, hidden, layers, intermediate, heads, kv heads, head size or 0 for hidden/heads, vocabulary or 0 for
    # the tokenizer's), with random weights.
    "360m": ("llama", 960, 32, 2560, 15, 5, 0, 0),  # SmolLM2-360M
    "0.5b": ("llama", 896, 24, 4864, 14, 2, 0, 0),  # Qwen2.5-0.5B
    "1.5b": ("llama", 1536, 28, 8960, 12, 2, 0, 0),  # Qwen2.5-1.5B
    # Gemma 3 270M: a 262k vocabulary, head size 256 (queries wider than the hidden size), sliding-window layers.
    "gemma3-270m": ("gemma3_text", 640, 18, 2048, 4, 1, 256, 262144),
    # Qwen3-0.6B: head size 128 (queries twice the hidden size), q/k norms, a 152k vocabulary.
    "qwen3-0.6b": ("qwen3", 1024, 28, 3072, 16, 8, 128, 151936),
    # Tiny shapes of this year's families, their layer kinds as published (settings in FAMILY_SETTINGS).
    "qwen3.5-tiny": ("qwen3_5", 512, 8, 1536, 8, 2, 128, 0),
    "gpt-oss-tiny": ("gpt_oss", 512, 8, 512, 8, 2, 64, 0),
    # Llama 3.1 8B's widths and vocabulary, cut to 4 layers, its LM head its own matrix as published: a GPU QLoRA bench.
    "llama-3.1-8b-4l": ("llama", 4096, 4, 14336, 32, 8, 128, 128256),
}
UNTIED = ("llama-3.1-8b-4l",)
"""Shapes whose LM head is a matrix of its own (the rest tie it to the input embeddings)."""
FAMILY_SETTINGS = {
    # Qwen3.5: three gated-DeltaNet layers to one of gated full attention, twice as many value heads as key heads.
    "qwen3_5": {"layer_types": ["linear_attention"] * 3 + ["full_attention"], "linear_num_key_heads": 4,
                "linear_num_value_heads": 8, "linear_key_head_dim": 64, "linear_value_head_dim": 64},
    # gpt-oss: sliding and full attention alternate; eight experts, two a token (the real ones: 32 and 128, four a token).
    "gpt_oss": {"layer_types": ["sliding_attention", "full_attention"], "num_local_experts": 8, "num_experts_per_tok": 2,
                "sliding_window": 128},
}


def random_model(shape: str, target: Path, tokenizer_dir: str | None) -> str:
    """A model of `shape` with random weights and the default model's (or `tokenizer_dir`'s) tokenizer; a shape's
    own vocabulary size, where it has one, is kept (the tokenizer uses the first ids), so its logits are the real size."""
    import torch
    from transformers import (
        AutoTokenizer,
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        GptOssConfig,
        GptOssForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen3_5ForCausalLM,
        Qwen3_5TextConfig,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    from tuneforge.core.models import resolve_model

    if (target / "config.json").is_file():
        return str(target)
    arch, hidden, layers, intermediate, heads, kv_heads, head_dim, vocab = SHAPES[shape]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or resolve_model("default").path)
    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM), "gemma3_text": (Gemma3TextConfig, Gemma3ForCausalLM),
                                 "qwen3": (Qwen3Config, Qwen3ForCausalLM), "qwen3_5": (Qwen3_5TextConfig, Qwen3_5ForCausalLM),
                                 "gpt_oss": (GptOssConfig, GptOssForCausalLM)}[arch]
    extra = {"head_dim": head_dim} if head_dim else {}
    extra.update(FAMILY_SETTINGS.get(arch, {}))
    if "layer_types" in extra:  # the family's pattern of layer kinds, repeated through the layers
        period = extra["layer_types"]
        extra["layer_types"] = period * (layers // len(period))
    if arch == "gemma3_text":
        extra["query_pre_attn_scalar"] = head_dim
    config = config_class(hidden_size=hidden, num_hidden_layers=layers, intermediate_size=intermediate,
                          num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab or len(tokenizer),
                          max_position_embeddings=2048, tie_word_embeddings=shape not in UNTIED, torch_dtype="bfloat16",
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **extra)
    torch.manual_seed(0)
    # Built on the GPU where there is one: a 2-billion-weight shape initialises in seconds there, minutes on a CPU.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = model_class(config).to(torch.bfloat16)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return str(target)


def method_config(method: str, model: str, steps: int, teacher: str | None) -> RunConfig:
    """The run config of one row: shared budget, the method's own defaults otherwise."""
    common = dict(model=model, method=method, max_steps=steps, batch_size=8, early_stopping_patience=0,
                  eval_steps=max(1, steps // 3), save_steps=steps)
    if METHODS[method].pairs_data:
        return RunConfig(**common, data=str(demo_file("brindlewick-pairs.jsonl")), eval_split=0.25)
    extra = {"teacher": teacher} if method == "distill" else {}
    return RunConfig(**common, data=str(demo_file("brindlewick.jsonl")), eval_data=str(demo_file("brindlewick-eval.jsonl")), **extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--random-shape", choices=sorted(SHAPES))
    parser.add_argument("--methods", default=",".join(m for m in METHODS if m != "auto"))
    parser.add_argument("--tokenizer", help="tokenizer folder for --random-shape (default: the default model's)")
    parser.add_argument("--teacher", help="distill's teacher (default: this invocation's lora run, merged)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("bench-methods"))
    args = parser.parse_args(argv)
    quiet_libraries()
    args.out.mkdir(parents=True, exist_ok=True)
    model = random_model(args.random_shape, args.out / f"random-{args.random_shape}", args.tokenizer) if args.random_shape else args.model
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "distill" in methods and not args.teacher:  # the teacher must exist before its student trains
        methods = ["lora", *[m for m in methods if m != "lora"]]
    finished = []
    stamp = time.strftime("%H%M%S")
    for method in methods:
        teacher = (args.teacher or str(args.out / f"{stamp}-lora")) if method == "distill" else None
        run = create_run(method_config(method, model, args.steps, teacher), args.out / f"{stamp}-{method}")
        print(f"--- {method}: {run.path}", flush=True)
        started = time.perf_counter()
        # A process per run, as the app starts them: each run's peak memory is its own.
        child = subprocess.run([sys.executable, "-m", "tuneforge.core.train", str(run.path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if child.returncode != 0:
            print(f"    FAILED: {' — '.join(failure_cause(run))}", flush=True)
            continue
        if method == "lora" and "distill" in methods and not args.teacher:
            merge(run.path)
        print(f"    {time.perf_counter() - started:.0f} s", flush=True)
        finished.append(compared_run(run.path))
    print()
    print(format_table(finished))
    return 0


if __name__ == "__main__":
    sys.exit(main())
