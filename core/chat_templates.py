"""Chat templates for models that have none, and the tokens that end a turn.

A base model (Gemma 3 270M, SmolLM2 base, Llama 3.2 base…) often ships without a chat template.
It gets its family's own template, written with the special tokens its vocabulary has, so each
turn ends with one token that training teaches (the model learns to stop). The family is told by
those tokens: `<start_of_turn>`/`<end_of_turn>` is Gemma, `<|turn>`/`<turn|>` Gemma 4, `<|start_header_id|>`/`<|eot_id|>` is
Llama 3, `<|im_start|>`/`<|im_end|>` is ChatML (Qwen, SmolLM), `<|user|>`/`<|end|>` is Phi-3;
a vocabulary with none of them gets Mistral's `[INST]` format, whose turns end with the model's
own end-of-sequence token. A run's `chat_template` setting picks a family instead of `auto`.

The template a run trains with is saved with its tokenizer, so it is the one merged, written
into the GGUF and the Modelfile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

AUTO = "auto"


@dataclass(frozen=True)
class ChatFamily:
    """A family's chat format: its Jinja template, the tokens it needs as single tokens, and what ends a turn."""

    template: str
    markers: tuple[str, ...]
    """Tokens the template writes that must each be one token of the vocabulary."""
    end_of_turn: str | None
    """The token that ends an assistant turn; None: the tokenizer's end-of-sequence token."""


FAMILIES: dict[str, ChatFamily] = {
    "gemma": ChatFamily(
        "{{ bos_token }}{% set ns = namespace(system='') %}{% for message in messages %}"
        "{% if message['role'] == 'system' %}{% set ns.system = message['content'] + '\n\n' %}"
        "{% else %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' + ns.system"
        " + message['content'] + '<end_of_turn>\n' }}{% set ns.system = '' %}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}",
        ("<start_of_turn>", "<end_of_turn>"), "<end_of_turn>"),
    "gemma4": ChatFamily(
        "{{ bos_token }}{% for message in messages %}{{ '<|turn>' + ('model' if message['role'] == 'assistant' else message['role'])"
        " + '\n' + message['content'] + '<turn|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|turn>model\n' }}{% endif %}",
        ("<|turn>", "<turn|>"), "<turn|>"),
    "llama3": ChatFamily(
        "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
        " + message['content'] + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), "<|eot_id|>"),
    "chatml": ChatFamily(
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        ("<|im_start|>", "<|im_end|>"), "<|im_end|>"),
    "phi3": ChatFamily(
        "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}",
        ("<|user|>", "<|assistant|>", "<|end|>"), "<|end|>"),
    "mistral": ChatFamily(
        "{{ bos_token }}{% set ns = namespace(system='') %}{% for message in messages %}"
        "{% if message['role'] == 'system' %}{% set ns.system = message['content'] + '\n\n' %}"
        "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
        "{% else %}{{ '[INST] ' + ns.system + message['content'] + ' [/INST]' }}{% set ns.system = '' %}{% endif %}{% endfor %}",
        (), None),
}
"""In the order `auto` tries them: the first whose markers are all single tokens wins; mistral needs none."""
CHOICES = (AUTO, *FAMILIES)
"""What a run's `chat_template` setting accepts."""
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<turn|>", "<|eom_id|>", "<|eot|>",
                      "<|END_OF_TURN_TOKEN|>", "</s>", "<|endoftext|>")
"""Tokens that end a turn in the templates models ship (besides each tokenizer's own end-of-sequence token)."""


def is_single_token(tokenizer: Any, text: str) -> bool:
    """Whether `text` encodes as exactly one token of this vocabulary (a special token, not pieces of it)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1


def family_for(tokenizer: Any) -> str:
    """The family whose tokens this vocabulary has (see the module docstring)."""
    for name, family in FAMILIES.items():
        if family.markers and all(is_single_token(tokenizer, marker) for marker in family.markers):
            return name
    return "mistral" if tokenizer.eos_token else "chatml"


def apply_chat_template_setting(tokenizer: Any, setting: str = AUTO) -> str | None:
    """Give the tokenizer the template `setting` names (`auto`: its own, else its family's).
    Returns the family given, or None when the tokenizer kept its own template; a ConfigError for a name that is
    none of CHOICES (a command-line option is not checked by the run config's schema)."""
    if setting not in CHOICES:
        raise ConfigError(f"unknown chat template '{setting}'", f"pick one of: {', '.join(CHOICES)}")
    if setting == AUTO:
        if getattr(tokenizer, "chat_template", None):
            return None
        setting = family_for(tokenizer)
    tokenizer.chat_template = FAMILIES[setting].template
    return setting


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    """Token ids that end a turn for this tokenizer (its eos plus the known end-of-turn markers)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    return ids


def end_of_turn_fix(tokenizer: Any) -> str:
    """What to do when training would never teach this tokenizer's end of turn: the family whose tokens it has."""
    family = family_for(tokenizer)
    if family == "chatml" and not is_single_token(tokenizer, "<|im_end|>"):
        return "this tokenizer has no end-of-turn or end-of-sequence token: pick a model that has one"
    return f"set chat_template: {family} in the run config (`--chat-template {family}`), a format this model's vocabulary has tokens for"
