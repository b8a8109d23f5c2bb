"""A peft LoRA adapter → a GGUF LoRA adapter that llama.cpp applies over the base GGUF at load time."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np

from tuneforge.core.errors import ExportError

from . import architectures
from .writer import atomic_gguf_writer


def convert_adapter(adapter_dir: Path, base_config: dict, out_file: Path) -> Path:
    """Write `adapter_dir` (peft format) as a GGUF adapter for a base with `base_config`, atomically."""
    from safetensors import safe_open

    arch = architectures.architecture_for(base_config, str(adapter_dir))
    lora_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if lora_config.get("peft_type", "LORA") != "LORA" or lora_config.get("use_dora"):
        raise ExportError(f"{adapter_dir}: only plain LoRA adapters can become GGUF adapters", "merge and export the full model instead")
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise ExportError(f"{adapter_dir}: no adapter_model.safetensors", "train the run to the end (or resume it) first")
    names = gguf.get_tensor_name_map(arch.gguf_arch, base_config["num_hidden_layers"])
    pairs: list[tuple[str, np.ndarray]] = []
    with safe_open(weights, framework="pt") as handle:
        for key in sorted(handle.keys()):
            if ".lora_A." not in key and ".lora_B." not in key:
                raise ExportError(f"{weights.name}: '{key}' is not a LoRA matrix", "adapters that also train other layers must be merged instead")
            # base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight → model.layers.0.self_attn.q_proj.weight
            module = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight").replace(".lora_B.weight", ".weight")
            target = names.get_name(module, try_suffixes=(".weight",))
            if target is None:
                raise ExportError(f"{weights.name}: no GGUF tensor for '{module}'", "the adapter targets a layer llama.cpp does not adapt")
            data = handle.get_tensor(key).float().numpy()
            if ".lora_B." in key:
                # The base's Q/K rows are permuted for llama.cpp's rotary layout; B holds those rows.
                data = architectures.transform(arch, base_config, module, data)
            pairs.append((target + (".lora_a" if ".lora_A." in key else ".lora_b"), np.ascontiguousarray(data, dtype=np.float32)))
    with atomic_gguf_writer(out_file, arch.gguf_arch) as writer:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora_config["lora_alpha"]))
        for name, data in pairs:
            writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    return out_file
