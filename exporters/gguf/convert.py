"""A HF checkpoint folder → a GGUF file (f32, f16, bf16, q8_0), written by llama.cpp's own converter.

The converter runs in a child process (llama_cpp.py). tuneforge checks what it can before: the
folder is a checkpoint, the converter knows its architecture, the disk has room. The file is
written under a temporary name and renamed into place once the converter finished, so a failure,
Ctrl-C or a full disk leaves no half-written file and keeps whatever was at the target.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneforge.core.atomic import atomic_file, disk_full_as_error
from tuneforge.core.errors import ExportError, ResourceError
from tuneforge.core.sentencepiece_file import user_defined_pieces

from . import llama_cpp
from .types import GGUF_TYPES, export_refusal

OUTTYPES = tuple(name for name, spec in GGUF_TYPES.items() if spec.by_converter)
"""The GGUF types the converter writes itself; the others are quantized from its f16 file."""
MTP_LAYER_KEYS = ("mtp_num_hidden_layers", "num_nextn_predict_layers")
"""Config keys of families whose checkpoints may carry multi-token-prediction layers (Qwen3.5, GLM, DeepSeek)."""
MTP_ARCHITECTURES = ("Qwen3NextFor", "Qwen3_5For", "Qwen3_5MoeFor")
"""Architectures whose converter expects MTP layers even when the config does not count them."""


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """config.json of a HF checkpoint; an ExportError when the folder is not one."""
    config_file = Path(model_dir) / "config.json"
    if not config_file.is_file():
        raise ExportError(f"{model_dir}: no config.json", "export a merged run (tuneforge merge RUN_DIR) or a HF model folder")
    return json.loads(config_file.read_text(encoding="utf-8"))


def architecture_of(config: dict[str, Any]) -> str:
    """The HF architecture class a checkpoint was saved as (what the converter is keyed by)."""
    return (config.get("architectures") or ["?"])[0]


def require_convertible(config: dict[str, Any], where: str) -> None:
    """An ExportError when the converter cannot write a checkpoint with this config (before any work)."""
    llama_cpp.require_converter()
    refusal = export_refusal(architecture_of(config))
    if refusal:
        raise ExportError(f"{where}: {refusal}", "chat with the run through transformers (tuneforge chat RUN_DIR), "
                          "or fine-tune a model whose GGUF column says yes (tuneforge models)")


def has_vision_tower(model_dir: Path) -> bool:
    """Whether a checkpoint is a multimodal one whose vision projector the converter writes (Qwen3.5, Gemma 3/4, …)."""
    config = read_model_config(model_dir)
    return "vision_config" in config and llama_cpp.has_vision_projector(architecture_of(config))


def convert_projector(model_dir: Path, out_file: Path) -> Path:
    """Write the vision projector (mmproj) of a multimodal checkpoint as an f16 GGUF; returns the path written."""
    from .pixtral import add_image_break

    model_dir, out_file = Path(model_dir), Path(out_file)
    _require_disk(out_file, (64 << 20))
    with atomic_file(out_file) as partial, disk_full_as_error(out_file):
        llama_cpp.run_script("convert_hf_to_gguf.py", [str(model_dir), "--mmproj", "--outfile", str(partial), "--outtype", "f16"],
                             f"{model_dir.name}'s vision projector", log_file(out_file))
        add_image_break(partial, model_dir)
    return out_file


def convert(model_dir: Path, out_file: Path, outtype: str = "f16", name: str | None = None) -> Path:
    """Write `model_dir` as a GGUF file of `outtype`; returns the path written."""
    if outtype not in OUTTYPES:
        raise ExportError(f"unknown GGUF type '{outtype}' for conversion", f"use one of {', '.join(OUTTYPES)}")
    model_dir, out_file = Path(model_dir), Path(out_file)
    config = read_model_config(model_dir)
    require_convertible(config, str(model_dir))
    tensor_names, parameters = _weights(model_dir)
    _require_disk(out_file, parameters * GGUF_TYPES[outtype].bits_per_weight / 8 + (64 << 20))
    with atomic_file(out_file) as partial, _converter_view(model_dir, out_file.parent) as folder:
        arguments = [str(folder), "--outfile", str(partial), "--outtype", outtype, "--model-name", name or model_dir.name]
        if _lacks_mtp_layers(config, tensor_names):
            arguments.append("--no-mtp")
        with disk_full_as_error(out_file):
            llama_cpp.run_script("convert_hf_to_gguf.py", arguments, model_dir.name, log_file(out_file))
    return out_file


@contextlib.contextmanager
def _converter_view(model_dir: Path, beside: Path) -> Iterator[Path]:
    """The folder the converter reads: `model_dir` itself, or, when its SentencePiece model has user-defined pieces
    the tokenizer config does not list, links to its files plus an added_tokens.json that lists them.

    The converter types a SentencePiece model's pieces by asking SentencePiece, which has no question for
    user-defined ones: they would become normal pieces, and llama.cpp would split runs of spaces that the
    model was trained to see whole. The person's folder is left as it is.
    """
    pieces = user_defined_pieces(model_dir)
    if not pieces:
        yield model_dir
        return
    with tempfile.TemporaryDirectory(dir=beside, prefix=".converter-view-") as view:
        for item in model_dir.iterdir():
            (Path(view) / item.name).symlink_to(item.resolve())
        listed = Path(view) / "added_tokens.json"
        already = json.loads(listed.read_text(encoding="utf-8")) if listed.is_file() else {}
        listed.unlink(missing_ok=True)  # a link to the person's file: write the view's own
        listed.write_text(json.dumps({**pieces, **already}), encoding="utf-8")
        yield Path(view)


def _lacks_mtp_layers(config: dict[str, Any], tensor_names: set[str]) -> bool:
    """Whether the config announces multi-token-prediction layers the weights do not hold.

    transformers trains and saves the model without them, so a fine-tune never has them; the
    converter must then be told to leave them out (it stops on an assertion otherwise).
    """
    settings = {**config, **config.get("text_config", {})}
    announced = any(settings.get(key) for key in MTP_LAYER_KEYS) or architecture_of(config).startswith(MTP_ARCHITECTURES)
    return announced and not any(".mtp." in name or name.startswith("mtp.") for name in tensor_names)


def _weights(model_dir: Path) -> tuple[set[str], int]:
    """The tensor names and parameter count of a checkpoint's safetensors files (read from their headers)."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir}: no safetensors weights", "export a merged run or a folder with .safetensors files")
    names, parameters = set(), 0
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for key in handle.keys():
                names.add(key)
                count = 1
                for size in handle.get_slice(key).get_shape():
                    count *= size
                parameters += count
    return names, parameters


def _require_disk(out_file: Path, needed: float) -> None:
    out_file.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out_file.parent).free
    if free < needed:
        raise ResourceError(
            f"{out_file.name} needs about {int(needed) >> 20} MiB; {free >> 20} MiB free in {out_file.parent}",
            "free some disk space, or export to another folder with --out",
        )


def log_file(out_file: Path) -> Path:
    """Where a failed conversion's log is kept: beside the file it was writing."""
    return out_file.with_name(out_file.name.split(".gguf")[0] + ".converter.log")
