"""What a chat model answers: its text, and whether it ended the turn itself (shared by the
transformers chat and the GGUF chat, which cannot import each other's modules)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """A greedy answer, and whether the model ended it (an end-of-turn token) rather than the token budget."""

    text: str
    stopped: bool
