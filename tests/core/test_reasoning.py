"""Reasoning traces: kept, rendered as the model's template renders them, trained or not by the
setting, and a template that drops them is counted and said, never silent."""

from __future__ import annotations

import json

import pytest

from tuneforge.core.cli import main
from tuneforge.core.data.formats import load_examples
from tuneforge.core.data.prepare import IGNORE_INDEX, DataRecipe, prepare, tokenize_chat

# ChatML that renders reasoning_content as a <think> block, as thinking models' templates (Qwen3, DeepSeek-R1) do.
THINKING_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' and message.get('reasoning_content') %}"
    "{{ '<think>\\n' + message['reasoning_content'] + '\\n</think>\\n\\n' }}{% endif %}"
    "{{ message['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
RECORD = {"messages": [
    {"role": "user", "content": "What is 17 × 3?"},
    {"role": "assistant", "reasoning_content": "17 × 3 = 17 + 17 + 17 = 51.", "content": "51."},
]}


@pytest.fixture
def thinking_tokenizer(default_model):
    from tuneforge.core.train.setup import load_tokenizer

    tokenizer = load_tokenizer(default_model)
    tokenizer.chat_template = THINKING_TEMPLATE
    return tokenizer


def trained_text(tokenizer, tokenized) -> str:
    return tokenizer.decode([t for t, label in zip(tokenized.input_ids, tokenized.labels, strict=True) if label != IGNORE_INDEX])


def load_one(tmp_path, record):
    path = tmp_path / "thinking.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return load_examples(path)


def test_reasoning_the_template_shows_is_trained_by_default(tmp_path, thinking_tokenizer):
    example = load_one(tmp_path, RECORD).examples[0]
    assert example.messages[1]["reasoning_content"] == "17 × 3 = 17 + 17 + 17 = 51."
    tokenized = tokenize_chat(example, thinking_tokenizer, 512)
    assert trained_text(thinking_tokenizer, tokenized) == "<think>\n17 × 3 = 17 + 17 + 17 = 51.\n</think>\n\n51.<|im_end|>\n"
    assert not tokenized.reasoning_dropped


def test_with_train_reasoning_off_the_trace_is_context_only(tmp_path, thinking_tokenizer):
    tokenized = tokenize_chat(load_one(tmp_path, RECORD).examples[0], thinking_tokenizer, 512, train_reasoning=False)
    assert trained_text(thinking_tokenizer, tokenized).strip() == "51.<|im_end|>"
    assert "17 + 17 + 17" in thinking_tokenizer.decode(tokenized.input_ids)  # still in the input


def test_think_tags_inside_the_content_are_masked_too(tmp_path, smol_tokenizer):
    record = {"messages": [RECORD["messages"][0], {"role": "assistant", "content": "<think>\nAdd 17 three times.\n</think>\n\n51."}]}
    tokenized = tokenize_chat(load_one(tmp_path, record).examples[0], smol_tokenizer, 512, train_reasoning=False)
    assert trained_text(smol_tokenizer, tokenized).strip() == "51.<|im_end|>"


def test_a_template_that_drops_reasoning_is_counted_and_said(tmp_path, smol_tokenizer, capsys):
    path = tmp_path / "thinking.jsonl"
    path.write_text("\n".join(json.dumps(RECORD) for _ in range(3)) + "\n", encoding="utf-8")
    prepared = prepare(load_examples(path), smol_tokenizer, DataRecipe(512, 0.0))
    assert prepared.stats.reasoning_dropped == 3  # SmolLM2's ChatML template shows only the content
    assert main(["data", "check", str(path)]) == 0
    assert "drops the reasoning traces of 3 record(s)" in capsys.readouterr().out


def test_a_template_that_strips_earlier_thinking_still_trains_each_answer(tmp_path, smol_tokenizer):
    """Qwen3's template keeps the <think> block of the last answer only; the earlier answers are found without theirs."""
    smol_tokenizer = __import__("copy").deepcopy(smol_tokenizer)
    smol_tokenizer.chat_template = (
        "{% for message in messages %}{% set content = message['content'] %}"
        "{% if message['role'] == 'assistant' and not loop.last %}{% set content = content.split('</think>')[-1].lstrip('\\n') %}{% endif %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + content + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    record = {"messages": [{"role": "user", "content": "17 × 3?"}, {"role": "assistant", "content": "<think>\n51\n</think>\n\n51."},
                           {"role": "user", "content": "And 17 × 4?"}, {"role": "assistant", "content": "<think>\n68\n</think>\n\n68."}]}
    tokenized = tokenize_chat(load_one(tmp_path, record).examples[0], smol_tokenizer, 512)
    assert trained_text(smol_tokenizer, tokenized) == "51.<|im_end|><think>\n68\n</think>\n\n68.<|im_end|>\n"
    assert tokenized.reasoning_dropped  # the first answer's reasoning is not shown: said, not silent
