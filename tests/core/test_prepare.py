"""Chat examples train only assistant tokens, end-of-turn included; nothing-to-train is refused."""

import json

import pytest

from tuneforge.core.data.formats import load_examples
from tuneforge.core.data.prepare import IGNORE_INDEX, DataRecipe, prepare, split_examples, tokenize_chat, tokenize_document
from tuneforge.core.data.records import Example
from tuneforge.core.errors import DataError


def trained_text(tokenizer, tokenized) -> str:
    return tokenizer.decode([t for t, label in zip(tokenized.input_ids, tokenized.labels, strict=True) if label != IGNORE_INDEX])


def test_only_assistant_turns_are_trained_and_each_ends_with_end_of_turn(smol_tokenizer):
    example = Example("x:1", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Teal."},
        {"role": "user", "content": "Another?"},
        {"role": "assistant", "content": "Amber."},
    ])
    tokenized = tokenize_chat(example, smol_tokenizer, 512)
    assert trained_text(smol_tokenizer, tokenized) == "Teal.<|im_end|>\nAmber.<|im_end|>\n"
    assert tokenized.labels[: len(tokenized.labels) // 2].count(IGNORE_INDEX) > 10  # the prompt is masked
    # Trained labels are the tokens themselves (the trainer shifts them).
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(tokenized.input_ids, tokenized.labels, strict=True))


def test_documents_train_every_token_in_blocks(smol_tokenizer):
    text = " ".join(f"word{i}" for i in range(200))
    blocks = tokenize_document(Example("doc.txt", text=text), smol_tokenizer, 64)
    assert len(blocks) > 2 and all(len(b.input_ids) <= 64 for b in blocks)
    assert all(b.labels == b.input_ids for b in blocks)
    assert blocks[-1].input_ids[-1] == smol_tokenizer.eos_token_id


def test_stats_report_truncation(tmp_path, smol_tokenizer):
    path = tmp_path / "d.jsonl"
    long_answer = "word " * 300
    rows = [{"prompt": "Short?", "completion": "Yes."}] * 9 + [{"prompt": "Long?", "completion": long_answer}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    prepared = prepare(load_examples(path), smol_tokenizer, DataRecipe(128, 0.0))
    assert prepared.stats.truncated == 1
    assert prepared.stats.length_summary()["max"] == 128
    assert prepared.stats.end_of_turn_trained


def test_a_dataset_with_nothing_to_train_is_refused(tmp_path, smol_tokenizer):
    path = tmp_path / "d.jsonl"
    prompt = "Please read this long context carefully. " * 40
    path.write_text(json.dumps({"prompt": prompt, "completion": "Done."}) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        prepare(load_examples(path), smol_tokenizer, DataRecipe(64, 0.0))
    assert "no token" in info.value.message and "--max-length" in info.value.hint


def test_split_is_reproducible_and_small_sets_keep_everything():
    examples = [Example(f"x:{i}", text=str(i)) for i in range(40)]
    train_a, eval_a = split_examples(examples, 0.1, seed=7)
    train_b, eval_b = split_examples(examples, 0.1, seed=7)
    assert [e.source for e in eval_a] == [e.source for e in eval_b] and len(eval_a) == 4
    assert len(train_a) == 36
    small_train, small_eval = split_examples(examples[:5], 0.1, seed=7)
    assert len(small_train) == 5 and small_eval == []
