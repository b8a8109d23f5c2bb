"""The record shapes tuneforge reads, and turning one record of a shape into an `Example`.

Shapes: preference `pairs` (prompt/chosen/rejected, or chosen/rejected conversations),
chat `messages`, ShareGPT `conversations`, Alpaca `instruction/input/output`,
`prompt/completion`, and plain `text`. Every record becomes an `Example` holding either
chat messages or raw text, tagged with the file and line it came from so problems can name
it. A pair keeps its chosen answer as the last message and its rejected answer beside it,
so the same file also trains the SFT methods on the chosen answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "model": "assistant", "bing": "assistant", "system": "system",
}
CHAT_ROLES = ("system", "user", "assistant")

# Shape name → the fields that identify it, checked in this order.
SHAPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pairs", ("chosen", "rejected")),
    ("messages", ("messages",)),
    ("sharegpt", ("conversations",)),
    ("alpaca", ("instruction", "output")),
    ("prompt_completion", ("prompt", "completion")),
    ("text", ("text",)),
)


@dataclass
class Example:
    """One normalised record: chat `messages`, or `text` for continued pre-training."""

    source: str
    """Where it came from, `FILE:LINE` (or the document's path)."""
    messages: list[dict[str, Any]] | None = None
    """role and content per message; an assistant turn the data marks untrained (OpenAI's `"weight": 0`)
    also carries `"weight": 0`."""
    text: str | None = None
    rejected: str | None = None
    """For preference pairs: the rejected answer to the same prompt (the chosen one ends `messages`)."""


class RecordError(ValueError):
    """A record that does not fit its shape; the message says which field is wrong."""


def detect_shape(record: dict[str, Any]) -> str | None:
    """The shape whose identifying fields the record has, or None."""
    for shape, fields in SHAPES:
        if all(name in record for name in fields):
            return shape
    return None


def normalise_record(shape: str, record: dict[str, Any], where: str) -> Example:
    """Turn one record of a known shape into an Example; RecordError says what is wrong."""
    missing = [name for name in dict(SHAPES)[shape] if name not in record]
    if missing:
        raise RecordError(f"missing field(s) {', '.join(missing)} (the dataset's shape is '{shape}')")
    if shape == "text":
        return Example(where, text=_text(record, "text"))
    if shape == "pairs":
        return _pair(record, where)
    if shape == "messages":
        messages = _chat_messages(record["messages"], "messages", role_key="role", content_key="content", roles=None)
    elif shape == "sharegpt":
        messages = _chat_messages(record["conversations"], "conversations", role_key="from", content_key="value", roles=SHAREGPT_ROLES)
    elif shape == "alpaca":
        prompt = _text(record, "instruction")
        extra = record.get("input") or ""
        if not isinstance(extra, str):
            raise RecordError("field 'input' must be a string")
        _valid_unicode(extra, "field 'input'")
        messages = _system(record) + [
            {"role": "user", "content": f"{prompt}\n\n{extra}" if extra.strip() else prompt},
            {"role": "assistant", "content": _text(record, "output")},
        ]
    else:  # prompt_completion
        messages = _system(record) + _turns(record, "prompt", "user") + _turns(record, "completion", "assistant")
    if not any(m["role"] == "assistant" for m in messages):
        raise RecordError("no assistant turn: nothing to learn from this record")
    if all(m.get("weight") == 0 for m in messages if m["role"] == "assistant"):
        raise RecordError("every assistant turn has weight 0: nothing to learn from this record")
    return Example(where, messages=messages)


def _pair(record: dict[str, Any], where: str) -> Example:
    """prompt + chosen + rejected (strings or chat messages), or two whole conversations that
    differ only in their last (assistant) message."""
    chosen = _answer_turns(record, "chosen")
    rejected = _answer_turns(record, "rejected")
    if "prompt" in record:
        prompt = _system(record) + _turns(record, "prompt", "user")
    else:  # conversations: the shared beginning is the prompt
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected[-1:]
        if prompt != _answer_turns(record, "rejected")[:-1]:
            raise RecordError("'chosen' and 'rejected' must be the same conversation up to their last message")
    if not prompt or prompt[-1]["role"] != "user":
        raise RecordError("a pair needs a prompt ending with a user message")
    if len(chosen) != 1 or len(rejected) != 1 or chosen[0]["role"] != "assistant" or rejected[0]["role"] != "assistant":
        raise RecordError("'chosen' and 'rejected' must each end with one assistant answer")
    if chosen[0]["content"] == rejected[0]["content"]:
        raise RecordError("'chosen' and 'rejected' are the same answer: nothing to prefer")
    return Example(where, messages=prompt + chosen, rejected=rejected[0]["content"])


def _answer_turns(record: dict[str, Any], name: str) -> list[dict[str, str]]:
    """A pair's answer: a string (one assistant message) or a list of chat messages."""
    value = record[name]
    if isinstance(value, list):
        return _chat_messages(value, name, role_key="role", content_key="content", roles=None)
    return [{"role": "assistant", "content": _text(record, name)}]


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise RecordError(f"field '{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError(f"field '{name}' is empty")
    return _valid_unicode(value, f"field '{name}'")


def _system(record: dict[str, Any]) -> list[dict[str, str]]:
    system = record.get("system")
    if system is None or system == "":
        return []
    if not isinstance(system, str):
        raise RecordError("field 'system' must be a string")
    return [{"role": "system", "content": _valid_unicode(system, "field 'system'")}]


def _turns(record: dict[str, Any], name: str, role: str) -> list[dict[str, str]]:
    """A prompt or completion: a string, or a list of chat messages (TRL's conversational form)."""
    value = record[name]
    if isinstance(value, list):
        return _chat_messages(value, name, role_key="role", content_key="content", roles=None)
    return [{"role": role, "content": _text(record, name)}]


def _chat_messages(value: Any, name: str, *, role_key: str, content_key: str, roles: dict[str, str] | None) -> list[dict[str, Any]]:
    """A list of chat messages; keys other than role, content and weight (`id`, `name`, metadata) are ignored."""
    if not isinstance(value, list) or not value:
        raise RecordError(f"field '{name}' must be a non-empty list of messages")
    messages = []
    for index, message in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(message, dict):
            raise RecordError(f"{where} must be an object with '{role_key}' and '{content_key}'")
        role = message.get(role_key)
        role = roles.get(role) if roles is not None and isinstance(role, str) else role
        if role not in CHAT_ROLES:
            allowed = sorted(roles) if roles is not None else list(CHAT_ROLES)
            raise RecordError(f"{where}.{role_key} is {message.get(role_key)!r}; expected one of {allowed}")
        content = _content_text(message.get(content_key), f"{where}.{content_key}")
        if role == "assistant" and not content.strip():
            raise RecordError(f"{where} is an empty assistant message")
        normalised: dict[str, Any] = {"role": role, "content": _valid_unicode(content, f"{where}.{content_key}")}
        weight = message.get("weight", 1)
        if weight not in (0, 1) or isinstance(weight, bool):
            raise RecordError(f"{where}.weight is {weight!r}; expected 0 (not trained) or 1 (trained)")
        if weight == 0:
            if role != "assistant":
                raise RecordError(f"{where}.weight: only assistant turns are trained, so only they take a weight")
            normalised["weight"] = 0
        messages.append(normalised)
    return messages


def _content_text(content: Any, where: str) -> str:
    """A message's text: a string, or OpenAI's list of content parts whose text parts are joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RecordError(f"{where} must be a string or a list of text parts, got {type(content).__name__}")
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            found = f"a '{kind}' part" if kind else f"{type(part).__name__} {part!r:.40}"
            raise RecordError(f"{where}[{index}] is {found}; tuneforge trains on text, so each part must be "
                              '{"type": "text", "text": "…"}')
        texts.append(part["text"])
    return "".join(texts)


def _valid_unicode(value: str, what: str) -> str:
    """`value`, unless it holds a lone surrogate (JSON's "\\ud800" escape), which no tokenizer can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(f"{what} holds an invalid character at position {exc.start} (a lone UTF-16 surrogate)") from None
    return value
