"""Load the base model for a method and wrap it with its adapter (peft)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..catalog import TOWERS
from ..config import RunConfig
from ..errors import ConfigError, ModelError, ResourceError
from ..hardware import Hardware
from ..methods import method_spec, smaller_base_options
from ..models import ResolvedModel
from ..runs import BASE_RECORD


def torch_dtype(name: str) -> Any:
    """The torch dtype for a name like `bfloat16`."""
    import torch

    return getattr(torch, name)


def load_tokenizer(path: Any, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer, with a pad token (the eos token when it has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - a broken tokenizer folder raises anything from json to sentencepiece
        raise ModelError(f"{path}: cannot load the tokenizer ({exc})", "check the model folder's tokenizer files") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{path}: only a slow (Python) tokenizer is available", "tuneforge needs a tokenizer.json (fast tokenizer)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(model: ResolvedModel, method: str, hardware: Hardware, trust_remote_code: bool = False,
                    load_in_4bit: bool = False) -> Any:
    """The base for `method`: 4-bit nf4 with double quantization for qlora (and for any LoRA method with
    `load_in_4bit`); fp32 master weights for
    methods that train the model's own weights (the trainer computes in bf16/fp16 on a GPU);
    the compute dtype otherwise. The reward method gets a scalar-scoring head instead of the LM head."""
    from transformers import AutoModelForSequenceClassification

    from ..language_model import contiguous_head_input, language_model_class, local_kernels_only

    spec = method_spec(method)
    compute = torch_dtype(hardware.compute_dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype("float32") if spec.weights == "whole" else compute,
                              "trust_remote_code": trust_remote_code, **local_kernels_only()}
    quantized = spec.quantized_base or load_in_4bit
    if quantized:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
    if hardware.cuda:  # each process of a multi-GPU run loads onto its own GPU
        import os

        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    loader = language_model_class(model.path)
    if spec.objective == "reward":
        loader, kwargs["num_labels"] = AutoModelForSequenceClassification, 1
    try:
        base = loader.from_pretrained(model.path, **kwargs)
    except Exception as exc:  # noqa: BLE001 - out of memory and unreadable weights come as many types; both are told apart below
        if "out of memory" in str(exc).lower():
            raise ResourceError(f"{model.name} does not fit in memory for {method}",
                                f"use {smaller_base_options(method, load_in_4bit)}, or a shorter --max-length") from None
        raise ModelError(f"{model.path}: cannot load the model ({type(exc).__name__}: {exc})", "check that the folder is a complete causal-LM checkpoint") from None
    if quantized and not hardware.cuda:
        keep_4bit_layout(base)
    return contiguous_head_input(base)


def parameter_count(parameter: Any) -> int:
    """How many weights a parameter holds: a 4-bit one's packed tensor holds two a byte (bitsandbytes'
    `Params4bit.numel()` counts the bytes), so its count comes from the shape it was quantized from."""
    import math

    quant_state = getattr(parameter, "quant_state", None)
    return math.prod(quant_state.shape) if quant_state is not None else parameter.numel()


def keep_4bit_layout(model: Any) -> None:
    """Keep every 4-bit layer of `model` in bitsandbytes' standard layout on a CPU.

    On CPUs with AVX512-BF16, bitsandbytes repacks a 4-bit weight into a CPU layout the first time
    the layer runs in eval mode without gradients (the forgetting probe, each evaluation), turning
    its double-quantized scales into bf16; saving the model (every checkpoint) converts it back and
    quantizes the scales again. The round trip is lossy, so the frozen base would compute different
    logits after each evaluation and checkpoint. Without the repacking the base stays bit-for-bit frozen.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


@contextmanager
def lora_merged(model: Any) -> Iterator[Any]:
    """`model` with its trained LoRA added into the base weights while the block runs (peft's merge_adapter), taken out
    after: the tuned model then generates at its base's speed, where each LoRA layer's two extra small matmuls in every
    decoding step made the forgetting probe take 1.8× its base's time on a CPU (46 s against 26 s, SmolLM2-135M). The
    answers are the merged model's, which is what is exported. A quantized base, another kind of adapter or a model
    without one runs unchanged. Taking the LoRA out again rounds the base in 16 bits: for the end of a run only."""
    from peft import PeftModel
    from peft.tuners.lora import LoraModel

    mergeable = (isinstance(model, PeftModel) and isinstance(model.base_model, LoraModel)
                 and getattr(model.base_model.model, "hf_quantizer", None) is None)
    if mergeable:
        model.merge_adapter()
    try:
        yield model
    finally:
        if mergeable:
            model.unmerge_adapter()


def make_trainable(base: Any, config: RunConfig, model: ResolvedModel, gradient_checkpointing: bool) -> Any:
    """Mark what `config.method` trains: a new or continued peft adapter, virtual tokens, or the base's own weights."""
    spec = method_spec(config.method)
    # QLoRA as LoRA: no peft k-bit preparation, which makes every weight that is not 4-bit (embeddings, an untied
    # head, norms) fp32 and so the whole residual stream (TRL and Unsloth dropped it: 19.1 → 14.2 GB on a 14B model).
    # The adapter's own weights are fp32 all the same (peft's autocast_adapter_dtype).
    if gradient_checkpointing and spec.weights != "whole":
        base.enable_input_require_grads()
    if spec.weights == "whole":
        return unfreeze(base, config)
    if config.adapter_from:
        return continue_adapter(base, config, model)
    from peft import get_peft_model

    return get_peft_model(base, peft_config(config, model, base))


def peft_config(config: RunConfig, model: ResolvedModel, base: Any) -> Any:
    """The peft configuration for an adapter or prompt method, with tuneforge's defaults."""
    import peft

    spec = method_spec(config.method)
    task = "SEQ_CLS" if spec.objective == "reward" else "CAUSAL_LM"
    if spec.weights == "prompt":
        common = {"task_type": task, "num_virtual_tokens": config.virtual_tokens}
        if spec.trains == "prefix":
            return peft.PrefixTuningConfig(**common)
        if spec.trains == "ptuning":
            return peft.PromptEncoderConfig(**common, encoder_hidden_size=base.config.hidden_size)
        # Starting from real words converges far faster than random vectors (Lester et al., 2021).
        return peft.PromptTuningConfig(**common, prompt_tuning_init=peft.PromptTuningInit.TEXT,
                                       prompt_tuning_init_text=PROMPT_INIT_TEXT, tokenizer_name_or_path=str(model.path))
    present = _module_names(base)  # one walk over the modules, not one per target name
    if spec.trains == "ia3":
        targets = [t for t in IA3_TARGETS if t in present]
        feedforward = [t for t in targets if t in IA3_FEEDFORWARD]
        if not feedforward or len(targets) == len(feedforward):
            raise ModelError(f"{model.name}: no k_proj/v_proj/down_proj layers for IA3", "use --method lora for this architecture")
        return peft.IA3Config(task_type=task, target_modules=targets, feedforward_modules=feedforward)
    targets = config.lora_targets or list(model.lora_targets)
    missing = [t for t in targets if t not in present]
    if missing:
        projections = sorted(name for name in present if "proj" in name)
        raise ModelError(
            f"{model.name}: no layers named {', '.join(missing)} to adapt",
            f"set lora_targets to layers the model has, e.g. {', '.join(projections[:8])}",
        )
    return peft.LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        # only where there is a tower to leave out (peft warns of an exclusion that excludes nothing)
        exclude_modules=NOT_LANGUAGE_MODEL if present & set(TOWERS) else None,
        use_dora=spec.dora,
        bias="none",
        task_type=task,
    )


PROMPT_INIT_TEXT = "Answer the question accurately and concisely."
NOT_LANGUAGE_MODEL = rf".*({'|'.join(TOWERS)}).*"
"""Modules of a multimodal checkpoint that LoRA leaves alone: its vision (and audio) towers share layer names with the
language model (SigLIP's q_proj in Gemma 3 and 4), and fine-tuning on text trains the language model only, so the
base's projector file still fits it."""
IA3_TARGETS = ("k_proj", "v_proj", "down_proj")
IA3_FEEDFORWARD = ("down_proj",)


def _module_names(model: Any) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}


def unfreeze(model: Any, config: RunConfig) -> Any:
    """full: every parameter trains. freeze: only the top `freeze_layers` decoder layers and
    parameters matching `freeze_patterns`; a ConfigError when that selects nothing."""
    import fnmatch
    import re

    if method_spec(config.method).trains == "all":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    names = [name for name, _ in model.named_parameters()]
    layer_of = {name: int(m.group(1)) for name in names if (m := re.search(r"\.layers\.(\d+)\.", name))}
    layers = max(layer_of.values(), default=-1) + 1
    first_trained = layers - min(config.freeze_layers, layers)
    chosen = {name for name in names if layer_of.get(name, -1) >= first_trained}
    chosen |= {name for name in names if any(fnmatch.fnmatchcase(name, pattern) for pattern in config.freeze_patterns)}
    if not chosen:
        raise ConfigError(
            f"freeze: no parameter selected (freeze_layers={config.freeze_layers}, patterns {config.freeze_patterns})",
            f"raise freeze_layers (the model has {layers} layers) or give patterns matching names like {names[-1]}",
        )
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in chosen)
    return model


def continue_adapter(base: Any, config: RunConfig, model: ResolvedModel) -> Any:
    """Load the adapter named by `adapter_from` to train further; it must belong to this base and method."""
    import json

    from peft import PeftModel

    folder = adapter_folder(config.adapter_from or "")
    recorded = folder / BASE_RECORD
    if recorded.is_file():
        base_name = json.loads(recorded.read_text(encoding="utf-8")).get("model")
        if base_name not in (model.name, config.model, str(model.path)):
            raise ConfigError(f"{folder}: this adapter was trained on {base_name}, not {model.name}",
                              f"continue it with --model {base_name}, or start a new adapter")
    expected = peft_config(config, model, base).peft_type
    saved = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    if saved.get("peft_type") != str(expected.value) or bool(saved.get("use_dora")) != method_spec(config.method).dora:
        raise ConfigError(f"{folder}: a {saved.get('peft_type')} adapter cannot continue as method {config.method}",
                          "use the method the adapter was trained with")
    return PeftModel.from_pretrained(base, folder, is_trainable=True)


def adapter_folder(reference: str) -> Path:
    """The adapter folder of a run directory, or a folder holding adapter_config.json itself."""
    path = Path(reference).expanduser()
    for candidate in (path / "adapter", path):
        if (candidate / "adapter_config.json").is_file():
            return candidate.resolve()
    raise ConfigError(f"{reference}: no adapter here (no adapter_config.json)", "name a trained run directory or its adapter/ folder")
