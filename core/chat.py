"""Answer chat messages with a transformers model: a run's merged model, its adapter, or any base."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import ModelError
from .models import resolve_model
from .runs import RunDir


@dataclass
class ChatModel:
    """A loaded model and tokenizer that answers greedily through the chat template."""

    model: Any
    tokenizer: Any
    label: str

    def answer(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 96) -> str:
        """The model's greedy reply to `messages` (or to one user message given as a string)."""
        import torch

        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        return self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def stream(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 96) -> Iterator[str]:
        """The reply as pieces, like GgufChat.stream (transformers generation gives it as one)."""
        yield self.answer(messages, max_new_tokens)

    def close(self) -> None:
        """Drop the model so its memory can be freed (the same call as GgufChat's)."""
        self.model = None


def load_chat_model(source: str | Path) -> Any:
    """A model that answers chat: a .gguf file or a run's verified export through llama.cpp;
    else a run's merged model (or base + adapter) or any model reference through transformers."""
    from tuneforge.exporters.gguf.chat import GgufChat, exported_gguf

    path = Path(str(source)).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: no such GGUF file", "check the path, or export a run with `tuneforge export RUN_DIR`")
        return GgufChat(path)
    if (path / "config.yaml").is_file():
        gguf_file = exported_gguf(RunDir(path).export)
        if gguf_file is not None:
            return GgufChat(gguf_file)
    return load_transformers_chat(path if path.exists() else str(source))


def load_transformers_chat(source: str | Path) -> ChatModel:
    """Load a run (merged/ if present, else base + adapter/) or a model reference with transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if not torch.cuda.is_available() else torch.bfloat16
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = Path(str(source)).expanduser()
    if (path / "config.yaml").is_file():
        run = RunDir(path)
        if (run.merged / "config.json").is_file():
            model = AutoModelForCausalLM.from_pretrained(run.merged, dtype=dtype).to(device)
            return ChatModel(model, AutoTokenizer.from_pretrained(run.merged), f"{run.name} (merged)")
        if (run.adapter / "adapter_config.json").is_file():
            from peft import PeftModel

            config = run.load_config()
            base = resolve_model(config.model, config.trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(base.path, dtype=dtype).to(device)
            model = PeftModel.from_pretrained(model, run.adapter)
            return ChatModel(model, AutoTokenizer.from_pretrained(run.adapter), f"{run.name} (adapter)")
        raise ModelError(f"{path}: this run has no trained model yet", f"train it with `tuneforge train {path}`")
    resolved = resolve_model(str(source))
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype).to(device)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    from .data.prepare import ensure_chat_template

    ensure_chat_template(tokenizer)
    return ChatModel(model, tokenizer, resolved.name)
