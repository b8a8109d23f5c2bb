"""Load the base model for a method and wrap it with its adapter (peft)."""

from __future__ import annotations

from typing import Any

from ..config import RunConfig
from ..errors import ModelError, ResourceError
from ..hardware import Hardware
from ..models import ResolvedModel


def torch_dtype(name: str) -> Any:
    """The torch dtype for a name like `bfloat16`."""
    import torch

    return getattr(torch, name)


def load_tokenizer(path: Any, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer, with a pad token (the eos token when it has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelError(f"{path}: cannot load the tokenizer ({exc})", "check the model folder's tokenizer files") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{path}: only a slow (Python) tokenizer is available", "tuneforge needs a tokenizer.json (fast tokenizer)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(model: ResolvedModel, method: str, hardware: Hardware, trust_remote_code: bool = False) -> Any:
    """The frozen base for `method`: 4-bit nf4 with double quantization for qlora, 16/32-bit for lora."""
    from transformers import AutoModelForCausalLM

    compute = torch_dtype(hardware.compute_dtype)
    kwargs: dict[str, Any] = {"dtype": compute, "trust_remote_code": trust_remote_code}
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
        # Keep the small non-quantized parts (norms, embeddings) in fp32 on CPU as well.
    if hardware.cuda:
        kwargs["device_map"] = {"": 0}
    try:
        return AutoModelForCausalLM.from_pretrained(model.path, **kwargs)
    except Exception as exc:
        if "out of memory" in str(exc).lower():
            raise ResourceError(f"{model.name} does not fit in memory for {method}", "use --method qlora, a smaller model, or a shorter --max-length") from None
        raise ModelError(f"{model.path}: cannot load the model ({type(exc).__name__}: {exc})", "check that the folder is a complete causal-LM checkpoint") from None


def add_adapter(base: Any, config: RunConfig, model: ResolvedModel, gradient_checkpointing: bool) -> Any:
    """Wrap the base in a fresh LoRA adapter; for a 4-bit base, prepare it for k-bit training first."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        base.enable_input_require_grads()
    targets = config.lora_targets or list(model.lora_targets)
    present = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise ModelError(
            f"{model.name}: no layers named {', '.join(missing)} to adapt",
            f"set lora_targets to layers the model has, e.g. {', '.join(sorted(p for p in present if 'proj' in p)[:8])}",
        )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(base, lora)
