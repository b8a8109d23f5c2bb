"""The OpenAI chat fine-tuning format, whole: per-turn weights, content parts, extra keys ignored."""

from __future__ import annotations

import json

from tuneforge.core.data.formats import load_examples
from tuneforge.core.data.prepare import IGNORE_INDEX, tokenize_chat


def load_one(tmp_path, record: dict):
    path = tmp_path / "openai.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return load_examples(path)


def trained_text(tokenizer, tokenized) -> str:
    return tokenizer.decode([t for t, label in zip(tokenized.input_ids, tokenized.labels, strict=True) if label != IGNORE_INDEX])


def test_a_turn_with_weight_0_is_context_and_not_trained(tmp_path, smol_tokenizer):
    loaded = load_one(tmp_path, {"messages": [
        {"role": "system", "content": "Marv is a sarcastic chatbot."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris.", "weight": 0},
        {"role": "user", "content": "Can you be more sarcastic?"},
        {"role": "assistant", "content": "Paris, as if everyone doesn't know that already.", "weight": 1},
    ]})
    assert not loaded.problems
    tokenized = tokenize_chat(loaded.examples[0], smol_tokenizer, 512)
    assert trained_text(smol_tokenizer, tokenized) == "Paris, as if everyone doesn't know that already.<|im_end|>\n"
    # The untrained answer is still in the input the model sees.
    assert "Paris.<|im_end|>" in smol_tokenizer.decode(tokenized.input_ids)


def test_content_parts_are_joined_and_extra_keys_ignored(tmp_path, smol_tokenizer):
    loaded = load_one(tmp_path, {"id": "conv-7", "metadata": {"source": "support"}, "messages": [
        {"role": "user", "name": "ada", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "who are you?"}]},
        {"role": "assistant", "id": "msg-2", "content": [{"type": "text", "text": "A helpful assistant."}]},
    ]})
    assert not loaded.problems
    assert loaded.examples[0].messages == [{"role": "user", "content": "Hello, who are you?"},
                                           {"role": "assistant", "content": "A helpful assistant."}]
    tokenized = tokenize_chat(loaded.examples[0], smol_tokenizer, 512)
    assert trained_text(smol_tokenizer, tokenized) == "A helpful assistant.<|im_end|>\n"


def test_non_text_parts_bad_weights_and_all_untrained_records_are_named(tmp_path):
    path = tmp_path / "openai.jsonl"
    records = [
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]},
                      {"role": "assistant", "content": "A cat."}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "weight": 0.5}]},
        {"messages": [{"role": "user", "content": "Hi", "weight": 0}, {"role": "assistant", "content": "Hello"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "weight": 0}]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    problems = load_examples(path).problems
    assert problems == [
        f"{path}:1: messages[0].content[0] is a 'image_url' part; tuneforge trains on text, so each part must be "
        '{"type": "text", "text": "…"}',
        f"{path}:2: messages[1].weight is 0.5; expected 0 (not trained) or 1 (trained)",
        f"{path}:3: messages[0].weight: only assistant turns are trained, so only they take a weight",
        f"{path}:4: every assistant turn has weight 0: nothing to learn from this record",
    ]
