"""An Ollama Modelfile beside the GGUF: FROM, a TEMPLATE matching the chat template, stops, default system prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.core.atomic import atomic_write_text
from tuneforge.core.errors import ExportError

# Ollama templates are Go templates; a Jinja chat template cannot be translated mechanically,
# so each chat format tuneforge exports has its Ollama equivalent written out here.
TEMPLATES = {
    "chatml": (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n",
        ("<|im_end|>", "<|im_start|>"),
    ),
    "llama3": (
        "<|begin_of_text|>{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
        "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|eot_id|>", "<|start_header_id|>"),
    ),
    # Gemma has no system role: a system message is a user turn, as Ollama's own Gemma templates have it.
    "gemma": (
        "{{- range .Messages }}<start_of_turn>{{ if eq .Role \"assistant\" }}model{{ else }}user{{ end }}\n"
        "{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n",
        ("<end_of_turn>", "<start_of_turn>"),
    ),
    # Gemma 4 has a system role; the model's turn opens as its template's generation prompt does (the published
    # template adds an empty thought block after it when thinking is off: see generation_prefill).
    "gemma4": (
        "{{- range .Messages }}<|turn>{{ if eq .Role \"assistant\" }}model{{ else }}{{ .Role }}{{ end }}\n"
        "{{ .Content }}<turn|>\n{{ end }}<|turn>model\n",
        ("<turn|>", "<|turn>"),
    ),
}
PROBE = "tuneforge-probe-message"


def chat_format(chat_template: str) -> str:
    """The chat format a Jinja chat template implements (chatml, llama3, gemma or gemma4)."""
    if "<|im_start|>" in chat_template:
        return "chatml"
    if "<|start_header_id|>" in chat_template:
        return "llama3"
    if "<start_of_turn>" in chat_template:
        return "gemma"
    if "<|turn>" in chat_template:
        return "gemma4"
    raise ExportError("the chat template is neither ChatML, Llama 3, Gemma nor Gemma 4 style",
                      "Ollama Modelfiles are written for those four formats")


def generation_prefill(tokenizer: Any, opener: str) -> str:
    """What the tokenizer's template writes after the model turn's `opener` in a generation prompt (Gemma 4's published
    template: an empty thought block), so that the Modelfile opens the model's turn as training saw it."""
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": PROBE}], tokenize=False, add_generation_prompt=True)
    return rendered.rsplit(opener, 1)[1] if opener in rendered.split(PROBE, 1)[-1] else ""


def default_system_prompt(tokenizer: Any, fmt: str) -> str | None:
    """The system prompt the template adds when a conversation has none (SmolLM2 and Qwen2.5 have one)."""
    if fmt in ("gemma", "gemma4"):
        return None  # Gemma's templates add none
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": PROBE}], tokenize=False)
    before_user = rendered.split(PROBE)[0]
    opener = "<|im_start|>system\n" if fmt == "chatml" else "<|start_header_id|>system<|end_header_id|>\n\n"
    closer = "<|im_end|>" if fmt == "chatml" else "<|eot_id|>"
    if opener not in before_user:
        return None
    system = before_user.split(opener, 1)[1].split(closer, 1)[0]
    return system.strip() or None


def write_modelfile(gguf_file: Path, tokenizer: Any, adapter: Path | None = None) -> Path:
    """Write `Modelfile` beside `gguf_file` (with an ADAPTER line for a LoRA GGUF); returns its path."""
    fmt = chat_format(tokenizer.chat_template or "")
    template, stops = TEMPLATES[fmt]
    if fmt == "gemma4":
        template += generation_prefill(tokenizer, "<|turn>model\n")
    lines = [f"FROM ./{gguf_file.name}"] + ([f"ADAPTER ./{adapter.name}"] if adapter else [])
    lines.append(f'TEMPLATE """{template}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    system = default_system_prompt(tokenizer, fmt)
    if system:
        lines.append(f'SYSTEM """{system}"""')
    path = gguf_file.parent / "Modelfile"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def ollama_command(modelfile: Path, name: str) -> str:
    """The command that registers the model with Ollama."""
    return f"ollama create {name} -f {modelfile}"
