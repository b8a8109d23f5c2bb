"""Merge a run's LoRA adapter into a 16-bit copy of its base: RUN_DIR/merged/.

For QLoRA the base is reloaded unquantized; merging into 4-bit weights would round the
adapter's update away. The result is a plain HF checkpoint with the tokenizer, the chat
template training used, and a generation config that stops at the end-of-turn token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .atomic import atomic_directory
from .chat_templates import end_of_turn_ids
from .errors import ConfigError, ExportError
from .events import Merged
from .methods import method_spec
from .models import resolve_base
from .runs import RunDir
from .sentencepiece_file import carry_sentencepiece_model

SIXTEEN_BIT = ("bfloat16", "float16")


def merge_dtype(model_path: Path) -> str:
    """The base's own dtype when it is 16-bit; float16 for fp32 bases (what GGUF f16 keeps)."""
    config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    dtype = str(config.get("dtype") or config.get("torch_dtype") or "float16")
    return dtype if dtype in SIXTEEN_BIT else "float16"


def require_mergeable(run: RunDir) -> bool:
    """Refuse, with what to do instead, a run whose result cannot become plain model weights;
    True when training already wrote whole weights to RUN_DIR/merged (full, freeze)."""
    method = run.load_config().method
    spec = method_spec(method)
    if spec.objective == "reward":
        raise ExportError(
            f"{run.path}: a reward model scores answers and does not write them; it has no chat weights to merge or export",
            "load RUN_DIR/adapter with peft's AutoPeftModelForSequenceClassification to score answers",
        )
    if spec.weights == "prompt":
        raise ExportError(
            f"{run.path}: {method} learns virtual tokens fed to the model at every call, not changes to its weights, "
            "so it cannot be merged or become a GGUF file",
            f"chat with it through transformers: tuneforge chat {run.path}",
        )
    if spec.weights == "whole" and not (run.merged / "config.json").is_file():
        raise ConfigError(f"{run.path}: no trained model yet", f"train it first with `tuneforge train {run.path}`")
    return spec.weights == "whole"


def merge_run(run: RunDir, dtype: str | None = None) -> Path:
    """Merge `run`'s adapter into its base and write RUN_DIR/merged atomically; returns its path.

    Methods that train the model's own weights (full, freeze) wrote merged/ when training
    finished: their merge returns it as it is.
    """
    config = run.load_config()
    if require_mergeable(run):
        return run.merged
    if not (run.adapter / "adapter_config.json").is_file():
        raise ConfigError(f"{run.path}: no trained adapter to merge", f"train it first with `tuneforge train {run.path}`")
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer, GenerationConfig

    from .language_model import load_language_model

    base_ref = resolve_base(config)
    dtype = dtype or merge_dtype(base_ref.path)
    base = load_language_model(base_ref.path, dtype=getattr(torch, dtype), trust_remote_code=config.trust_remote_code)
    merged = PeftModel.from_pretrained(base, run.adapter).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(run.adapter)
    generation = generation_config(base_ref.path, tokenizer, GenerationConfig)
    with atomic_directory(run.merged) as staging:
        merged.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        carry_sentencepiece_model(base_ref.path, staging)
        generation.save_pretrained(staging)
    run.record(Merged(path=str(run.merged), dtype=dtype))
    return run.merged


def generation_config(base_path: Path, tokenizer: Any, generation_config_class: Any) -> Any:
    """The base's generation config, with every end-of-turn token as a stop token."""
    try:
        generation = generation_config_class.from_pretrained(base_path)
    except OSError:
        generation = generation_config_class()
    eos = generation.eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    template = tokenizer.chat_template or ""
    stops.update(i for i in end_of_turn_ids(tokenizer) if tokenizer.convert_ids_to_tokens(i) in template or i == tokenizer.eos_token_id)
    generation.eos_token_id = sorted(stops)
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    return generation
