"""Write a byte-level BPE tokenizer into a GGUF file the way llama.cpp reads it.

Tokens with their types (special added tokens are CONTROL), merges, the pre-tokenizer
name llama.cpp must apply, bos/eos/pad ids, the add-bos flag and the chat template.
"""

from __future__ import annotations

import json
from hashlib import sha256
from pathlib import Path
from typing import Any

import gguf

from tuneforge.core.errors import ExportError

# llama.cpp recognises a BPE pre-tokenizer by hashing the ids its tokenizer gives for this
# text; the text and the hashes below are llama.cpp's own (its converter's table), for the
# families tuneforge exports.
PRE_TOKENIZER_CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 "
    "333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
PRE_TOKENIZERS = {
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3.x
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen2, Qwen2.5
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen3
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM, SmolLM2
    "ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e": "gpt-4o",  # Phi-4-mini (o200k)
}


def pre_tokenizer_name(tokenizer: Any) -> str:
    """The llama.cpp pre-tokenizer that splits text like `tokenizer` does."""
    ids = tokenizer.encode(PRE_TOKENIZER_CHECK_TEXT, add_special_tokens=False)
    digest = sha256(str(ids).encode()).hexdigest()
    if digest not in PRE_TOKENIZERS:
        raise ExportError(
            f"the tokenizer's pre-tokenizer is not one llama.cpp is known to reproduce (fingerprint {digest[:12]})",
            "tuneforge exports the tokenizers of Llama 3, Qwen2/2.5/3, SmolLM and Phi-4; use a model of those families",
        )
    return PRE_TOKENIZERS[digest]


def add_vocab(writer: gguf.GGUFWriter, model_dir: Path, vocab_size: int) -> None:
    """Add the tokenizer of `model_dir` to `writer`, padded to the model's `vocab_size`."""
    from transformers import AutoTokenizer

    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ExportError(f"{model_dir}: no tokenizer.json", "export needs the fast tokenizer file the model came with")
    spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    model = spec.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ExportError(
            f"{tokenizer_file}: a {model.get('type')} tokenizer{' with byte fallback' if model.get('byte_fallback') else ''} "
            "(SentencePiece style)",
            "tuneforge exports byte-level BPE tokenizers (Llama 3, Qwen, SmolLM, Phi-4); this one is not supported yet",
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokens, types = _tokens_and_types(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    if not special.merges:
        raise ExportError(f"{tokenizer_file}: no BPE merges", "the tokenizer file looks incomplete")
    special.add_to_gguf(writer, quiet=True)
    end_of_turn = _end_of_turn_id(tokenizer)
    if end_of_turn is not None:
        writer.add_eot_token_id(end_of_turn)


def _end_of_turn_id(tokenizer: Any) -> int | None:
    """The token that closes a chat turn in this tokenizer's template (so llama.cpp stops there)."""
    from tuneforge.core.data.prepare import END_OF_TURN_TOKENS

    template = tokenizer.chat_template or ""
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in template and token in vocab:
            return vocab[token]
    return None


def _tokens_and_types(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Token texts by id and their llama.cpp types; ids the tokenizer lacks become unused padding."""
    by_id = {token_id: token for token, token_id in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder  # id → AddedToken
    size = max(vocab_size, len(by_id))
    tokens, types = [], []
    for token_id in range(size):
        if token_id not in by_id:
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
        elif token_id in added:
            tokens.append(added[token_id].content)
            types.append(gguf.TokenType.CONTROL if added[token_id].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[token_id])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types
