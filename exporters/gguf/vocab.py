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
    """Add the tokenizer of `model_dir` to `writer`, padded to the model's `vocab_size`.

    Byte-level BPE (Llama 3, Qwen, SmolLM, Phi-4) becomes llama.cpp's `gpt2` tokenizer;
    SentencePiece-style BPE with byte fallback (Llama 2, Mistral) becomes its `llama` one.
    """
    from transformers import AutoTokenizer

    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ExportError(f"{model_dir}: no tokenizer.json", "export needs the fast tokenizer file the model came with")
    spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise ExportError(
            f"{tokenizer_file}: a {model.get('type')} tokenizer",
            "tuneforge exports BPE tokenizers (Llama, Mistral, Qwen, SmolLM, Phi-4); this one is not supported yet",
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sentencepiece = bool(model.get("byte_fallback"))
    tokens, types = _tokens_and_types(tokenizer, vocab_size)
    if sentencepiece:
        writer.add_tokenizer_model("llama")
        writer.add_token_scores(_merge_scores(tokens, model.get("merges", [])))
        writer.add_add_space_prefix(_prepends_space(spec))
        types = [gguf.TokenType.BYTE if _is_byte_token(t) and kind == gguf.TokenType.NORMAL else kind for t, kind in zip(tokens, types, strict=True)]
        if tokenizer.unk_token_id is not None:
            types[tokenizer.unk_token_id] = gguf.TokenType.UNKNOWN
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=not sentencepiece, n_vocab=len(tokens))
    if not sentencepiece and not special.merges:
        raise ExportError(f"{tokenizer_file}: no BPE merges", "the tokenizer file looks incomplete")
    special.add_to_gguf(writer, quiet=True)
    end_of_turn = _end_of_turn_id(tokenizer)
    if end_of_turn is not None:
        writer.add_eot_token_id(end_of_turn)


def _end_of_turn_id(tokenizer: Any) -> int | None:
    """The token that closes a chat turn in this tokenizer's template (so llama.cpp stops there)."""
    from tuneforge.core.chat_templates import END_OF_TURN_TOKENS

    template = tokenizer.chat_template or ""
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in template and token in vocab:
            return vocab[token]
    return None


def _merge_scores(tokens: list[str], merges: list[Any]) -> list[float]:
    """SentencePiece scores llama.cpp can merge by: a token made by an earlier merge scores higher.

    The HF form of a SentencePiece vocabulary lists merges in the order of the original
    piece scores, so minus the merge's rank gives llama.cpp the same merge priority.
    """
    rank: dict[str, int] = {}
    for index, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        rank.setdefault(left + right, index)
    return [-float(rank[token]) if token in rank else 0.0 for token in tokens]


def _prepends_space(spec: dict[str, Any]) -> bool:
    """Whether the tokenizer puts "▁" before the text (Llama 2, Mistral do; Gemma does not)."""
    text = json.dumps([spec.get("normalizer"), spec.get("pre_tokenizer")])
    return '"Prepend"' in text or ('"Metaspace"' in text and '"prepend_scheme": "never"' not in text)


def _is_byte_token(token: str) -> bool:
    return len(token) == 6 and token.startswith("<0x") and token.endswith(">")


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
