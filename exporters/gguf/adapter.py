"""A peft LoRA adapter → a GGUF LoRA adapter that llama.cpp applies over the base GGUF at load time,
written by llama.cpp's own `convert_lora_to_gguf.py`."""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.core.atomic import atomic_file, disk_full_as_error
from tuneforge.core.errors import ExportError

from . import llama_cpp
from .convert import log_file, require_convertible


def convert_adapter(adapter_dir: Path, base_dir: Path, base_config: dict, out_file: Path) -> Path:
    """Write `adapter_dir` (peft format) as a GGUF adapter for the base model in `base_dir`, atomically."""
    require_convertible(base_config, str(base_dir))
    lora_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if lora_config.get("peft_type", "LORA") != "LORA" or lora_config.get("use_dora"):
        raise ExportError(f"{adapter_dir}: only plain LoRA adapters can become GGUF adapters", "merge and export the full model instead")
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise ExportError(f"{adapter_dir}: no adapter_model.safetensors", "train the run to the end (or resume it) first")
    if lora_config.get("modules_to_save"):
        raise ExportError(f"{adapter_dir}: the adapter also trains whole layers ({', '.join(lora_config['modules_to_save'])})",
                          "merge and export the full model instead")
    with atomic_file(out_file) as partial, disk_full_as_error(out_file):
        llama_cpp.run_script("convert_lora_to_gguf.py", ["--base", str(base_dir), "--outfile", str(partial), "--outtype", "f32",
                                                         str(adapter_dir)], adapter_dir.name, log_file(out_file))
    return out_file
