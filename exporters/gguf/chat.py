"""Chat with a GGUF file through llama.cpp (llama-cpp-python), using the chat template inside the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from tuneforge.core.errors import ExportError, ModelError
from tuneforge.core.modelfiles import check_gguf


class GgufChat:
    """A GGUF model that answers chat messages greedily (or streams the answer)."""

    adapters: tuple[str, ...] = ()
    """No switchable adapters: a GGUF holds its fine-tune in its weights (the same attribute as ChatModel's)."""

    def __init__(self, path: Path, n_ctx: int = 4096) -> None:
        import llama_cpp

        self.path = Path(path)
        self.label = self.path.name
        check_gguf(self.path)  # a file cut short would fail inside llama.cpp with no word of why
        try:
            self._llm = llama_cpp.Llama(str(self.path), n_ctx=n_ctx, verbose=False, seed=0)
        except ValueError as exc:
            raise ModelError(f"{self.path}: llama.cpp cannot load this GGUF file ({exc})", "export it again with `tuneforge export`") from None

    def answer(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 256) -> str:
        """The complete greedy reply."""
        return "".join(self.stream(messages, max_new_tokens)).strip()

    def stream(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 256) -> Iterator[str]:
        """The greedy reply, piece by piece as llama.cpp produces it."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        for chunk in self._llm.create_chat_completion(messages=messages, max_tokens=max_new_tokens, temperature=0.0, stream=True):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield piece

    def close(self) -> None:
        """Free llama.cpp's memory now rather than at interpreter shutdown."""
        self._llm.close()


def exported_gguf(export_dir: Path) -> Path | None:
    """The first model GGUF (not an adapter) that passed verification in an export's report; None without one."""
    report = export_dir / "export-report.json"
    if not report.is_file():
        return None
    data: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    files = [f for f in data.get("files", []) if f.get("gguf_type") != "lora"]  # an adapter needs its base to load
    passing = [Path(f["file"]) for f in files if f.get("passed") and Path(f["file"]).is_file()]
    if not files:
        return None
    if not passing:
        raise ExportError(f"{report}: no exported file passed verification", "see the report, then export again")
    return passing[0]
