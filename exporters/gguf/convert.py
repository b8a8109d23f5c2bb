"""Convert a merged HF checkpoint to GGUF (f32, f16, bf16, q8_0), streaming one tensor at a time.

Pass one reads only tensor names and shapes to write the header; pass two loads, converts
and writes each tensor, so peak memory stays near the largest tensor. The file is written
under a temporary name and renamed into place once complete.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from tuneforge.core.errors import ExportError, ResourceError

from . import architectures
from .types import GGUF_TYPES
from .vocab import add_vocab
from .writer import atomic_gguf_writer

OUTTYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16),
    "bf16": (gguf.LlamaFileType.MOSTLY_BF16, gguf.GGMLQuantizationType.BF16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, gguf.GGMLQuantizationType.Q8_0),
}
"""The file and tensor type of each GGUF type the converter writes itself (types.py: by_converter)."""
assert set(OUTTYPES) == {name for name, spec in GGUF_TYPES.items() if spec.by_converter}
SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass
class _PlannedTensor:
    hf_name: str | None  # None for tensors computed from the config
    gguf_name: str
    shape: tuple[int, ...]
    qtype: gguf.GGMLQuantizationType
    source: Path | None = None


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """config.json of a HF checkpoint; an ExportError when the folder is not one."""
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ExportError(f"{model_dir}: no config.json", "export a merged run (tuneforge merge RUN_DIR) or a HF model folder")
    return json.loads(config_file.read_text(encoding="utf-8"))


def convert(model_dir: Path, out_file: Path, outtype: str = "f16", name: str | None = None) -> Path:
    """Write `model_dir` as a GGUF file of `outtype`; returns the path written."""
    if outtype not in OUTTYPES:
        raise ExportError(f"unknown GGUF type '{outtype}' for conversion", f"use one of {', '.join(OUTTYPES)}")
    model_dir, out_file = Path(model_dir), Path(out_file)
    config = read_model_config(model_dir)
    arch = architectures.architecture_for(config, str(model_dir))  # before any work
    file_type, qtype = OUTTYPES[outtype]
    plan = list(_plan_tensors(model_dir, config, arch, qtype))
    needed = sum(_nbytes(t) for t in plan) + (64 << 20)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out_file.parent).free
    if free < needed:
        raise ResourceError(
            f"{out_file.name} needs about {needed >> 20} MiB; {free >> 20} MiB free in {out_file.parent}",
            "free some disk space, or export to another folder with --out",
        )
    with atomic_gguf_writer(out_file, arch.gguf_arch) as writer:
        writer.add_name(name or model_dir.name)
        writer.add_file_type(file_type)
        if qtype == gguf.GGMLQuantizationType.Q8_0:
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        architectures.add_hyperparameters(writer, config)
        add_vocab(writer, model_dir, config["vocab_size"])
        for tensor in plan:
            shape = gguf.quant_shape_to_byte_shape(tensor.shape, tensor.qtype) if _is_quant(tensor.qtype) else tensor.shape
            writer.add_tensor_info(tensor.gguf_name, shape, _numpy_dtype(tensor.qtype), _nbytes(tensor), raw_dtype=tensor.qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for data in _tensor_data(config, arch, plan):
            writer.write_tensor_data(data)
    return out_file


def _weight_files(model_dir: Path) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir}: no safetensors weights", "export a merged run or a folder with .safetensors files")
    return files


def _plan_tensors(model_dir: Path, config: dict[str, Any], arch: architectures.Architecture,
                  qtype: gguf.GGMLQuantizationType) -> Iterator[_PlannedTensor]:
    from safetensors import safe_open

    names = gguf.get_tensor_name_map(arch.gguf_arch, config["num_hidden_layers"])
    for file in _weight_files(model_dir):
        with safe_open(file, framework="pt") as handle:
            for hf_name in handle.keys():
                if hf_name.endswith(SKIPPED_SUFFIXES):
                    continue
                if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
                    continue
                gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if gguf_name is None:
                    raise ExportError(f"{file.name}: tensor '{hf_name}' has no GGUF counterpart", "the checkpoint has layers this architecture does not")
                shape = tuple(handle.get_slice(hf_name).get_shape())
                yield _PlannedTensor(hf_name, gguf_name, shape, _tensor_type(shape, qtype), file)
    for gguf_name, data in architectures.extra_tensors(config):
        yield _PlannedTensor(None, gguf_name, data.shape, gguf.GGMLQuantizationType.F32)


def _tensor_type(shape: tuple[int, ...], wanted: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    """Norms and biases stay F32; a weight whose rows do not fit Q8_0 blocks falls back to F16."""
    if len(shape) < 2 or wanted == gguf.GGMLQuantizationType.F32:
        return gguf.GGMLQuantizationType.F32
    if _is_quant(wanted) and shape[-1] % gguf.GGML_QUANT_SIZES[wanted][0] != 0:
        return gguf.GGMLQuantizationType.F16
    return wanted


def _is_quant(qtype: gguf.GGMLQuantizationType) -> bool:
    return qtype not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)


def _numpy_dtype(qtype: gguf.GGMLQuantizationType) -> type:
    return {gguf.GGMLQuantizationType.F32: np.float32, gguf.GGMLQuantizationType.F16: np.float16}.get(qtype, np.uint8)


def _nbytes(tensor: _PlannedTensor) -> int:
    block, type_size = gguf.GGML_QUANT_SIZES[tensor.qtype]
    return int(np.prod(tensor.shape)) // block * type_size


def _tensor_data(config: dict[str, Any], arch: architectures.Architecture,
                 plan: list[_PlannedTensor]) -> Iterator[np.ndarray]:
    """Load, transform and encode each planned tensor in plan order."""
    from safetensors import safe_open

    extras = dict(architectures.extra_tensors(config))
    with contextlib.ExitStack() as stack:
        handles: dict[Path, Any] = {}
        for tensor in plan:
            if tensor.hf_name is None:
                data = extras[tensor.gguf_name]
            else:
                if tensor.source not in handles:
                    handles[tensor.source] = stack.enter_context(safe_open(tensor.source, framework="pt"))
                data = handles[tensor.source].get_tensor(tensor.hf_name).float().numpy()
                data = architectures.transform(arch, config, tensor.hf_name, data)
            yield _encode(data, tensor.qtype)


def _encode(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype).view(np.uint8)
