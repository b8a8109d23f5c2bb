"""The image-break embedding a Pixtral vision projector needs (Mistral 3 and Ministral 3 in transformers' format).

llama.cpp reads an image through a Pixtral projector row by row, and writes the `[IMG_BREAK]` token's embedding
between rows; the converter copies that embedding into the projector file. For a checkpoint in transformers' format
it never sees it: the projector conversion drops every `language_model.` tensor before looking, and the embeddings
are one of them (llama.cpp issue #24235). llama.cpp then refuses the file ("unable to find tensor
v.token_embd.img_break"). `add_image_break` writes the row the converter meant to write, from the checkpoint's own
token embeddings, and leaves any other projector as it is.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from tuneforge.core.atomic import atomic_file
from tuneforge.core.errors import ExportError

IMAGE_BREAK_TENSOR = "v.token_embd.img_break"
IMAGE_BREAK_TOKEN = "[IMG_BREAK]"


def add_image_break(projector: Path, model_dir: Path) -> bool:
    """Give a Pixtral `projector` GGUF its image-break embedding from `model_dir` when the converter left it out;
    True when the file was rewritten."""
    reader = gguf.GGUFReader(projector)
    if _projector_type(reader) != "pixtral" or any(tensor.name == IMAGE_BREAK_TENSOR for tensor in reader.tensors):
        return False
    row = image_break_embedding(model_dir)
    with atomic_file(projector) as rewritten:
        _copy_with_tensor(reader, rewritten, IMAGE_BREAK_TENSOR, row)
    return True


def image_break_embedding(model_dir: Path) -> np.ndarray:
    """The `[IMG_BREAK]` token's row of the checkpoint's input embeddings, as float32."""
    from safetensors import safe_open
    from transformers import AutoTokenizer

    token_id = AutoTokenizer.from_pretrained(model_dir).convert_tokens_to_ids(IMAGE_BREAK_TOKEN)
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, framework="pt") as handle:
            for key in handle.keys():
                if key.endswith("embed_tokens.weight") and "vision" not in key:
                    return handle.get_slice(key)[token_id : token_id + 1].float().numpy()[0]
    raise ExportError(f"{model_dir}: no token embeddings in its safetensors files, which its vision projector needs",
                      "export from a complete checkpoint (config.json, tokenizer and every .safetensors file)")


def _projector_type(reader: gguf.GGUFReader) -> str | None:
    field = reader.get_field(gguf.Keys.Clip.PROJECTOR_TYPE)
    return field.contents() if field is not None else None


def _copy_with_tensor(reader: gguf.GGUFReader, out_file: Path, name: str, data: np.ndarray) -> None:
    """Write `reader`'s file again to `out_file`, every key and tensor as it was, with one tensor added."""
    writer = gguf.GGUFWriter(out_file, arch=reader.get_field(gguf.Keys.General.ARCHITECTURE).contents())
    try:
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue  # the writer adds these itself
            kind = field.types[0]
            writer.add_key_value(field.name, field.contents(), kind,
                                 sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
        for tensor in reader.tensors:
            writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type)
        writer.add_tensor_info(name, data.shape, data.dtype, data.nbytes, gguf.GGMLQuantizationType.F32)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor in reader.tensors:
            writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
        writer.write_tensor_data(data)
    finally:
        writer.close()
