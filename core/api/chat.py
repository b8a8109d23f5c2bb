"""Chat: a run's model (its verified GGUF when exported), a model folder or a GGUF file to talk to, the base
beside a tuned GGUF at its quantization, and the sampling settings (see core/chat.py)."""

from __future__ import annotations

from ..chat import Sampling, interactive_chat, load_adapters_chat, load_base_beside, load_chat_model

__all__ = ["Sampling", "interactive_chat", "load_adapters_chat", "load_base_beside", "load_chat_model"]
