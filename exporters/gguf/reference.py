"""What the HF model an export came from computes on the verification texts, written once to a folder
that each file's verification (a child process running llama.cpp) reads: the token ids its tokenizer
gives for each probe, and its logits at every position of each text.

Computed once per export, so the HF model can be freed before any GGUF is loaded beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOKENIZER_PROBES = (
    "Hello world! How are you today?",
    "def add(a, b):\n    return a + b  # 42\n",
    "Prices rose 3.5% in 2024 — «quoted» text, émigré café, 東京, 🚀🦙.",
    "  leading spaces,\ttabs\nand\n\nnew lines  ",
)
CHAT_PROBE = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
]
VERIFY_CONTEXT = 1024
"""llama.cpp's context for verification; longer texts are cut to it on both sides."""
INDEX_FILE = "reference.json"
LOGITS_FILE = "logits.npy"


@dataclass
class Reference:
    """The HF side of every check: probe texts with their HF token ids, and the texts compared
    position by position with the HF logits (rows `offsets[i]` to `offsets[i] + len(sequences[i])`)."""

    probes: list[tuple[str, list[int]]]
    sequences: list[list[int]]
    offsets: list[int]
    logits: np.ndarray
    texts: int
    """How many texts the logits and perplexity checks read (some may be too short to count)."""

    def logits_of(self, index: int) -> np.ndarray:
        """The HF logits at every position of sequence `index`."""
        start = self.offsets[index]
        return np.asarray(self.logits[start:start + len(self.sequences[index])])

    @classmethod
    def load(cls, folder: Path) -> Reference:
        """Read a reference written by `write_reference` (the logits memory-mapped, not read whole)."""
        index = json.loads((folder / INDEX_FILE).read_text(encoding="utf-8"))
        return cls([(text, ids) for text, ids in index["probes"]], index["sequences"], index["offsets"],
                   np.load(folder / LOGITS_FILE, mmap_mode="r"), index["texts"])


def chat_texts(tokenizer: Any) -> list[str]:
    """Chat-formatted probe texts rendered by the model's own template (none without a template)."""
    if not getattr(tokenizer, "chat_template", None):
        return []
    return [
        tokenizer.apply_chat_template(CHAT_PROBE, tokenize=False, add_generation_prompt=True),
        tokenizer.apply_chat_template(CHAT_PROBE[:3], tokenize=False),
    ]


def hf_logits(model: Any, ids: list[int]) -> np.ndarray:
    """Logits at every position of `ids` from a transformers model."""
    import torch

    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def write_reference(hf_model: Any, tokenizer: Any, eval_texts: list[str], folder: Path) -> Path:
    """Compute what `hf_model` and `tokenizer` give on the probes and `eval_texts`, into `folder`."""
    probe_texts = list(TOKENIZER_PROBES) + chat_texts(tokenizer)
    probes = [(text, tokenizer.encode(text, add_special_tokens=False)) for text in probe_texts]
    texts = probe_texts + list(eval_texts)  # both models are given the HF ids
    sequences = [ids for ids in (tokenizer.encode(t, add_special_tokens=False)[:VERIFY_CONTEXT] for t in texts) if len(ids) >= 2]
    offsets = np.cumsum([0] + [len(ids) for ids in sequences[:-1]]).tolist()
    folder.mkdir(parents=True, exist_ok=True)
    first = hf_logits(hf_model, sequences[0])
    # Written text by text into a file-backed array: a large vocabulary times many positions need not fit in RAM.
    logits = np.lib.format.open_memmap(folder / LOGITS_FILE, mode="w+", dtype=np.float32,
                                       shape=(sum(len(ids) for ids in sequences), first.shape[1]))
    logits[:len(sequences[0])] = first
    for ids, start in zip(sequences[1:], offsets[1:], strict=True):
        logits[start:start + len(ids)] = hf_logits(hf_model, ids)
    logits.flush()
    del logits
    (folder / INDEX_FILE).write_text(json.dumps({"probes": probes, "sequences": sequences, "offsets": offsets,
                                                 "texts": len(texts)}), encoding="utf-8")
    return folder
