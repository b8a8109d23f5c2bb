"""A GGUF's SentencePiece vocabulary written back as the `tokenizer.model` file its family's checkpoints ship.

A model imported from GGUF (core/models.py) gets its tokenizer from transformers as `tokenizer.json`
only. For SentencePiece families (Llama 2, Mistral, Gemma, Phi-3) that loses the piece scores
llama.cpp merges by: llama.cpp's converter then refuses the folder (Gemma 2, Phi-3) or writes
placeholder scores that split words differently (Llama-family folders). The GGUF holds the
original pieces, scores and types, so the file can be rebuilt exactly.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .atomic import atomic_file

FILE_NAME = "tokenizer.model"


def sentencepiece_model(gguf_file: Path) -> bytes | None:
    """The serialized SentencePiece model of a GGUF's vocabulary, or None when it is not a SentencePiece one."""
    from gguf import GGUFReader
    from sentencepiece import sentencepiece_model_pb2 as proto

    fields = GGUFReader(gguf_file).fields

    def value(key: str, default: object = None) -> object:
        return fields[key].contents() if key in fields else default

    if value("tokenizer.ggml.model") != "llama":
        return None
    model = proto.ModelProto()
    unknown = int(value("tokenizer.ggml.unknown_token_id", 0))  # type: ignore[call-overload]
    kinds = proto.ModelProto.SentencePiece
    # GGUF's token types are SentencePiece's own numbers (normal 1, unknown 2, control 3, user-defined 4, unused 5,
    # byte 6). Some files also mark their padding entries unknown; SentencePiece allows one unknown piece.
    for index, (piece, score, kind) in enumerate(zip(value("tokenizer.ggml.tokens"), value("tokenizer.ggml.scores"),  # type: ignore[call-overload]
                                                     value("tokenizer.ggml.token_type"), strict=True)):
        kind = kinds.UNUSED if kind == kinds.UNKNOWN and index != unknown else int(kind)
        model.pieces.add(piece=piece, score=float(score), type=kind)
    trainer = model.trainer_spec
    trainer.model_type = proto.TrainerSpec.BPE
    trainer.vocab_size = len(model.pieces)
    trainer.byte_fallback = any(piece.type == kinds.BYTE for piece in model.pieces)
    trainer.unk_id = unknown
    trainer.bos_id = int(value("tokenizer.ggml.bos_token_id", -1))  # type: ignore[call-overload]
    trainer.eos_id = int(value("tokenizer.ggml.eos_token_id", -1))  # type: ignore[call-overload]
    trainer.pad_id = int(value("tokenizer.ggml.padding_token_id", -1))  # type: ignore[call-overload]
    normalizer = model.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = bool(value("tokenizer.ggml.add_space_prefix", True))
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    return model.SerializeToString()


def add_sentencepiece_model(gguf_file: Path, folder: Path) -> bool:
    """Write `folder/tokenizer.model` from `gguf_file` when its vocabulary is SentencePiece and the file is missing;
    whether the folder has one now."""
    target = Path(folder) / FILE_NAME
    if target.is_file():
        return True
    data = sentencepiece_model(gguf_file)
    if data is None:
        return False
    with atomic_file(target) as partial:
        partial.write_bytes(data)
    return True


def carry_sentencepiece_model(base_folder: Path, target: Path) -> None:
    """Copy the base model's `tokenizer.model` into a folder its fine-tune is saved in (transformers saves only
    `tokenizer.json`); tuneforge never changes a model's vocabulary, so the base's file stays true."""
    source = Path(base_folder) / FILE_NAME
    if source.is_file() and not (Path(target) / FILE_NAME).is_file():
        shutil.copyfile(source, Path(target) / FILE_NAME)


def needs_sentencepiece_model(folder: Path) -> bool:
    """Whether a folder's tokenizer is SentencePiece-style BPE (byte fallback) without its `tokenizer.model`."""
    tokenizer_file = Path(folder) / "tokenizer.json"
    if (Path(folder) / FILE_NAME).is_file() or not tokenizer_file.is_file():
        return False
    return re.search(r'"byte_fallback":\s*true', tokenizer_file.read_text(encoding="utf-8")) is not None


def user_defined_pieces(folder: Path) -> dict[str, int]:
    """The user-defined pieces (matched whole, before the merges: Gemma's runs of spaces, tabs and newlines) of a
    folder's `tokenizer.model` that its tokenizer_config.json does not list as added tokens, by id."""
    import json

    from sentencepiece import sentencepiece_model_pb2 as proto

    model_file = Path(folder) / FILE_NAME
    if not model_file.is_file():
        return {}
    model = proto.ModelProto()
    model.ParseFromString(model_file.read_bytes())
    config_file = Path(folder) / "tokenizer_config.json"
    listed = json.loads(config_file.read_text(encoding="utf-8")).get("added_tokens_decoder", {}) if config_file.is_file() else {}
    kind = proto.ModelProto.SentencePiece.USER_DEFINED
    return {piece.piece: index for index, piece in enumerate(model.pieces) if piece.type == kind and str(index) not in listed}
