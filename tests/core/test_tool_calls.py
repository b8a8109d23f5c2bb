"""Tool-calling conversations: rendered through the model's own template with its tools, only the
assistant's calls and answers trained; a template that cannot show tools is named, with a way out."""

from __future__ import annotations

import json

import pytest

from tuneforge.core.data.formats import load_examples
from tuneforge.core.data.prepare import IGNORE_INDEX, DataRecipe, prepare, tokenize_chat
from tuneforge.core.errors import DataError

# Qwen2.5's published chat template (tools in the system turn, calls in <tool_call> tags, results as user turns).
QWEN25_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}"
    "{{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with "
    "function signatures within <tools></tools> XML tags:\\n<tools>\" }}{%- for tool in tools %}{{- \"\\n\" }}{{- tool | tojson }}"
    "{%- endfor %}{{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}"
    "\\n</tool_call><|im_end|>\\n\" }}{%- else %}{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{%- endif %}{%- for message in messages %}{%- if (message.role == \"user\") or (message.role == \"system\" "
    "and not loop.first) or (message.role == \"assistant\" and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == \"assistant\" %}{{- '<|im_start|>' + message.role }}{%- if message.content %}"
    "{{- '\\n' + message.content }}{%- endif %}{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}"
    "{%- set tool_call = tool_call.function %}{%- endif %}{{- '\\n<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}"
    "{{- '\", \"arguments\": ' }}{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == \"tool\" %}{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}"
    "{{- '<|im_start|>user' }}{%- endif %}{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}{{- '<|im_end|>\\n' }}{%- endif %}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
OPENAI_RECORD = {"tools": [WEATHER], "messages": [
    {"role": "user", "content": "Is it raining in Quillon?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Quillon\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"rain\": true, \"celsius\": 11}"},
    {"role": "assistant", "content": "Yes: it is raining in Quillon, 11 °C."},
]}
SHAREGPT_RECORD = {"tools": json.dumps([WEATHER]), "conversations": [
    {"from": "human", "value": "Is it raining in Quillon?"},
    {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Quillon"}})},
    {"from": "observation", "value": "{\"rain\": true, \"celsius\": 11}"},
    {"from": "gpt", "value": "Yes: it is raining in Quillon, 11 °C."},
]}


@pytest.fixture(scope="module")
def qwen25_tokenizer(qwen_tokenizer_dir):
    from tuneforge.core.train.setup import load_tokenizer

    tokenizer = load_tokenizer(qwen_tokenizer_dir)
    tokenizer.chat_template = QWEN25_TEMPLATE
    return tokenizer


def write(tmp_path, *records) -> object:
    path = tmp_path / "tools.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("record", [OPENAI_RECORD, SHAREGPT_RECORD], ids=["openai", "sharegpt"])
def test_only_the_assistants_call_and_answer_are_trained(tmp_path, qwen25_tokenizer, record):
    loaded = load_examples(write(tmp_path, record))
    assert not loaded.problems
    example = loaded.examples[0]
    assert example.tools == [WEATHER]
    assert example.messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Quillon"}}
    tokenized = tokenize_chat(example, qwen25_tokenizer, 1024)
    text = qwen25_tokenizer.decode(tokenized.input_ids)
    assert "# Tools" in text and '"name": "get_weather"' in text  # the tools reach the template
    trained = qwen25_tokenizer.decode([t for t, label in zip(tokenized.input_ids, tokenized.labels, strict=True) if label != IGNORE_INDEX])
    assert trained == ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Quillon"}}\n</tool_call><|im_end|>\n'
                       "Yes: it is raining in Quillon, 11 °C.<|im_end|>\n")
    assert "tool_response" not in trained and "raining in Quillon?" not in trained


def test_a_template_without_tools_is_named_with_the_line_and_a_model_that_can(tmp_path, smol_tokenizer):
    path = write(tmp_path, {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}, OPENAI_RECORD)
    with pytest.raises(DataError) as info:
        prepare(load_examples(path), smol_tokenizer, DataRecipe(512, 0.0))
    assert f"{path}:2: the model's chat template does not show the tools it is given (no trace of get_weather)" in info.value.message
    assert "Qwen2.5" in info.value.message


def test_broken_tool_calls_are_named(tmp_path):
    bad_arguments = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": "{city: Quillon"}}]}]}
    no_name = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}]}
    path = write(tmp_path, bad_arguments, no_name)
    problems = load_examples(path).problems
    assert problems[0].startswith(f"{path}:1: messages[1].tool_calls[0]: the arguments of get_weather are not JSON")
    assert problems[1] == f"{path}:2: messages[1].tool_calls[0] has no function name"
