"""The record shapes tuneforge reads, and turning one record of a shape into an `Example`.

Shapes: preference `pairs` (prompt/chosen/rejected, or chosen/rejected conversations),
chat `messages`, ShareGPT `conversations`, Alpaca `instruction/input/output`,
`prompt/completion`, `prompt` alone (for GRPO, which samples its own answers), and plain `text`. Every record becomes an `Example` holding either
chat messages or raw text, tagged with the file and line it came from so problems can name
it. A pair keeps its chosen answer as the last message and its rejected answer beside it,
so the same file also trains the SFT methods on the chosen answers. A chat record may carry a
`label` (or a thumbs `rating`) saying its last answer is good or bad, as KTO's data does: the
`kto` method learns from both, the SFT methods from the good ones alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "model": "assistant", "bing": "assistant", "system": "system",
    "function_call": "assistant", "observation": "tool", "tool": "tool",
}
CHAT_ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_CALLS = ("function_call",)
"""ShareGPT turns (LLaMA-Factory's tool format) whose value is a JSON tool call {"name": …, "arguments": …}."""

# Shape name → the fields that identify it, checked in this order.
SHAPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pairs", ("chosen", "rejected")),
    ("messages", ("messages",)),
    ("sharegpt", ("conversations",)),
    ("alpaca", ("instruction", "output")),
    ("prompt_completion", ("prompt", "completion")),
    ("prompts", ("prompt",)),
    ("text", ("text",)),
)


@dataclass
class Example:
    """One normalised record: chat `messages`, or `text` for continued pre-training."""

    source: str
    """Where it came from, `FILE:LINE` (or the document's path)."""
    messages: list[dict[str, Any]] | None = None
    """role and content per message; an assistant turn may carry `tool_calls` (OpenAI's shape, arguments
    as an object) and `reasoning_content` (a thinking trace), a tool result `tool_call_id`/`name`, and an
    assistant turn the data marks untrained (OpenAI's `"weight": 0`) `"weight": 0`."""
    tools: list[dict[str, Any]] | None = None
    """The tools (function schemas) the conversation may call, given to the chat template as `tools=`."""
    text: str | None = None
    rejected: str | None = None
    """For preference pairs: the rejected answer to the same prompt (the chosen one ends `messages`)."""
    label: bool | None = None
    """For feedback on one answer at a time (KTO): True when the answer ending `messages` is a good one, False when
    bad; None when the record says neither."""


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
    if shape == "prompts":  # prompts alone, for a method that samples its own answers (GRPO); TRL's prompt-only form
        messages = _system(record) + _turns(record, "prompt", "user")
        if messages[-1]["role"] != "user":
            raise RecordError("a prompt ends with a user turn (or give the answer as 'completion')")
        return Example(where, messages=messages, tools=_tools(record))
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
    return Example(where, messages=messages, tools=_tools(record), label=_label(record))


LABEL_WORDS = {"good": True, "true": True, "yes": True, "positive": True, "up": True, "👍": True,
               "bad": False, "false": False, "no": False, "negative": False, "down": False, "👎": False}
"""How a `label` (or `rating`) may say good or bad in words, compared in lower case."""


def _label(record: dict[str, Any]) -> bool | None:
    """Whether the record's answer is labelled good or bad: `label` true/false (also 1/0 and LABEL_WORDS), or a thumbs
    `rating` of 1 or -1 (a rating on a wider scale says no clear good or bad, so it is refused rather than guessed)."""
    for name, numbers in (("label", {1: True, 0: False}), ("rating", {1: True, -1: False})):
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in numbers:
            return numbers[int(value)]
        if isinstance(value, str) and value.strip().lower() in LABEL_WORDS:
            return LABEL_WORDS[value.strip().lower()]
        expected = "true or false (also good/bad, 1/0)" if name == "label" else "1 (good) or -1 (bad)"
        raise RecordError(f"field '{name}' is {value!r}; expected {expected}")
    return None


def _tools(record: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The record's `tools`: a list of function schemas, also as a JSON string (LLaMA-Factory writes it so)."""
    tools = record.get("tools")
    if tools in (None, "", []):
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as exc:
            raise RecordError(f"field 'tools' is a string but not JSON ({exc.msg})") from None
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise RecordError("field 'tools' must be a list of function schemas")
    return tools


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
    """A list of chat messages (OpenAI's keys, or ShareGPT's with `roles` mapping its names)."""
    if not isinstance(value, list) or not value:
        raise RecordError(f"field '{name}' must be a non-empty list of messages")
    return [_message(message, f"{name}[{index}]", role_key, content_key, roles) for index, message in enumerate(value)]


def _message(message: Any, where: str, role_key: str, content_key: str, roles: dict[str, str] | None) -> dict[str, Any]:
    """One chat message normalised; keys other than role, content, tool calls and weight (`id`, `name`, metadata) are dropped."""
    if not isinstance(message, dict):
        raise RecordError(f"{where} must be an object with '{role_key}' and '{content_key}'")
    raw_role = message.get(role_key)
    role = roles.get(raw_role) if roles is not None and isinstance(raw_role, str) else raw_role
    if role not in CHAT_ROLES:
        allowed = sorted(roles) if roles is not None else list(CHAT_ROLES)
        raise RecordError(f"{where}.{role_key} is {raw_role!r}; expected one of {allowed}")
    if roles is not None and raw_role in SHAREGPT_CALLS:  # the turn's value is the call itself
        return {"role": "assistant", "content": "", "tool_calls": [_tool_call(message.get(content_key), f"{where}.{content_key}")]}
    calls = message.get("tool_calls") if role == "assistant" else None
    content = message.get(content_key)
    content = _valid_unicode(_content_text("" if content is None and calls else content, f"{where}.{content_key}"), f"{where}.{content_key}")
    normalised: dict[str, Any] = {"role": role, "content": content}
    if calls:
        if not isinstance(calls, list):
            raise RecordError(f"{where}.tool_calls must be a list")
        normalised["tool_calls"] = [_tool_call(call, f"{where}.tool_calls[{i}]") for i, call in enumerate(calls)]
    elif role == "assistant" and not content.strip():
        raise RecordError(f"{where} is an empty assistant message")
    reasoning = message.get("reasoning_content")
    if role == "assistant" and isinstance(reasoning, str) and reasoning.strip():  # a thinking model's trace
        normalised["reasoning_content"] = _valid_unicode(reasoning, f"{where}.reasoning_content")
    if role == "tool":  # which call this answers, for templates that show it
        normalised.update({key: message[key] for key in ("tool_call_id", "name") if isinstance(message.get(key), str)})
    weight = message.get("weight")
    weight = 1 if weight is None else weight  # columnar data fills a key other rows have with null
    if weight not in (0, 1) or isinstance(weight, bool):
        raise RecordError(f"{where}.weight is {weight!r}; expected 0 (not trained) or 1 (trained)")
    if weight == 0:
        if role != "assistant":
            raise RecordError(f"{where}.weight: only assistant turns are trained, so only they take a weight")
        normalised["weight"] = 0
    return normalised


def _tool_call(call: Any, where: str) -> dict[str, Any]:
    """A tool call in OpenAI's shape {"type": "function", "function": {"name", "arguments": object}}; from
    that shape, from a bare {"name", "arguments"}, or from either as a JSON string."""
    if isinstance(call, str):
        try:
            call = json.loads(call)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{where} is a string but not a JSON tool call ({exc.msg})") from None
    if not isinstance(call, dict):
        raise RecordError(f"{where} must be a tool call object")
    function = call.get("function", call)
    name, arguments = (function.get("name"), function.get("arguments", {})) if isinstance(function, dict) else (None, None)
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where} has no function name")
    if isinstance(arguments, str):  # OpenAI sends arguments as a JSON string; chat templates want an object
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise RecordError(f"{where}: the arguments of {name} are not JSON ({exc.msg})") from None
    if not isinstance(arguments, dict):
        raise RecordError(f"{where}: the arguments of {name} must be an object")
    normalised = {"type": "function", "function": {"name": name, "arguments": arguments}}
    return {**({"id": call["id"]} if isinstance(call.get("id"), str) else {}), **normalised}


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
