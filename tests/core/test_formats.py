"""Every dataset shape loads and normalises; every malformed record is named by FILE:LINE."""

import json
from pathlib import Path

import pytest

from tuneforge.core.data.formats import load_examples
from tuneforge.core.errors import DataError


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


@pytest.mark.parametrize(
    "record, shape",
    [
        ({"messages": CHAT}, "messages"),
        ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}, "sharegpt"),
        ({"instruction": "Hi", "input": "", "output": "Hello!"}, "alpaca"),
        ({"prompt": "Hi", "completion": "Hello!"}, "prompt_completion"),
        ({"prompt": [CHAT[0]], "completion": [CHAT[1]]}, "prompt_completion"),
    ],
)
def test_chat_shapes_normalise_to_the_same_messages(tmp_path, record, shape):
    loaded = load_examples(write_jsonl(tmp_path / "d.jsonl", [record]))
    assert loaded.shape == shape
    assert not loaded.problems
    assert loaded.examples[0].messages == CHAT
    assert loaded.examples[0].source.endswith("d.jsonl:1")


def test_alpaca_input_joins_the_instruction(tmp_path):
    loaded = load_examples(write_jsonl(tmp_path / "d.jsonl", [{"instruction": "Translate", "input": "chat", "output": "cat", "system": "Be brief."}]))
    assert loaded.examples[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Translate\n\nchat"},
        {"role": "assistant", "content": "cat"},
    ]


def test_text_shape(tmp_path):
    loaded = load_examples(write_jsonl(tmp_path / "d.jsonl", [{"text": "Once upon a time."}]))
    assert loaded.shape == "text" and loaded.examples[0].text == "Once upon a time."


def test_csv_with_mapped_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('question,answer\n"Hi, there",Hello!\nBye,"See you,\nsoon"\n', encoding="utf-8")
    loaded = load_examples(path, {"prompt": "question", "completion": "answer"})
    assert loaded.shape == "prompt_completion"
    assert [e.messages[1]["content"] for e in loaded.examples] == ["Hello!", "See you,\nsoon"]
    assert loaded.examples[1].source.endswith("d.csv:3")


def test_folder_of_documents(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# Notes\nSome text.", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "b.txt").write_text("More text.", encoding="utf-8")
    (tmp_path / "docs" / "ignored.bin").write_bytes(b"\x00\x01")
    loaded = load_examples(tmp_path / "docs")
    assert loaded.shape == "documents"
    assert [e.text for e in loaded.examples] == ["# Notes\nSome text.", "More text."]


def test_malformed_records_are_all_reported_with_their_lines(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [
        {"messages": CHAT},
        '{"messages": [broken',
        "",
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"prompt": "no messages field"},
        "[1, 2]",
        {"messages": [{"role": "user", "content": 3}]},
        '{"messages": [{"role": "user", "content": "Who founded it?"}, ',
    ])
    loaded = load_examples(path)
    problems = "\n".join(loaded.problems)
    assert f"{path}:2: not valid JSON: Expecting value at column 15" in problems
    assert f"{path}:9: not valid JSON: the line ends at column 61 before its record does (cut short?)" in problems
    assert f"{path}:4: no assistant turn" in problems
    assert f"{path}:5: messages[0].role is 'wizard'" in problems
    assert f"{path}:6: missing field(s) messages" in problems
    assert f"{path}:7: expected a JSON object" in problems
    assert f"{path}:8: messages[0].content must be a string" in problems
    assert len(loaded.examples) == 1
    with pytest.raises(DataError) as info:
        loaded.raise_for_problems()
    assert f"{path}:2" in info.value.message and "data check" in info.value.hint


def test_non_utf8_line_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps({"text": "ok"}).encode() + b"\n" + b'{"text": "caf\xe9"}\n')
    loaded = load_examples(path)
    assert loaded.problems == [f"{path}:2: not UTF-8 text (byte 13 of the line; save the file as UTF-8)"]


def test_unknown_shape_and_empty_file_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"d.jsonl:1: cannot tell the dataset's shape"):
        load_examples(write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "b"}]))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no records"):
        load_examples(empty)
    with pytest.raises(DataError, match="no such file"):
        load_examples(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    "record",
    [
        {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."},
        {"prompt": [CHAT[0]], "chosen": [CHAT[1]], "rejected": [{"role": "assistant", "content": "Go away."}]},
        {"chosen": CHAT, "rejected": [CHAT[0], {"role": "assistant", "content": "Go away."}]},
    ],
)
def test_preference_pairs_in_every_form_keep_the_chosen_answer_last(tmp_path, record):
    loaded = load_examples(write_jsonl(tmp_path / "pairs.jsonl", [record]))
    assert loaded.shape == "pairs" and not loaded.problems
    example = loaded.examples[0]
    assert example.messages == CHAT and example.rejected == "Go away."


def test_broken_pairs_are_named_by_line(tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."},
        {"prompt": "Hi", "chosen": "Same.", "rejected": "Same."},
        {"chosen": CHAT, "rejected": [{"role": "user", "content": "Other"}, {"role": "assistant", "content": "No."}]},
        {"prompt": "Hi", "chosen": "Hello!", "rejected": 3},
    ])
    problems = load_examples(path).problems
    assert len(problems) == 3
    assert problems[0].startswith(f"{path}:2:") and "same answer" in problems[0]
    assert problems[1].startswith(f"{path}:3:") and "same conversation" in problems[1]
    assert problems[2].startswith(f"{path}:4:") and "'rejected' must be a string" in problems[2]


def test_feedback_labels_read_in_every_usual_spelling_and_an_unclear_one_is_named_by_line(tmp_path):
    """KTO's data: a good or bad label on each answer, as true/false, words, 1/0, or a thumbs rating of 1/-1."""
    good, bad = {"prompt": "Hi", "completion": "Hello!"}, {"prompt": "Hi", "completion": "Go away."}
    path = write_jsonl(tmp_path / "feedback.jsonl", [
        {**good, "label": True}, {**good, "label": "Good"}, {**good, "label": 1}, {**good, "rating": 1}, {**good, "rating": "👍"},
        {**bad, "label": False}, {**bad, "label": "bad"}, {**bad, "label": 0}, {**bad, "rating": -1}, {**bad, "label": None},
        {**good, "rating": 4}, {**good, "label": "maybe"},
    ])
    loaded = load_examples(path)
    assert [e.label for e in loaded.examples] == [True] * 5 + [False] * 4 + [None]
    assert len(loaded.problems) == 2
    assert loaded.problems[0].startswith(f"{path}:11:") and "'rating' is 4" in loaded.problems[0] and "-1 (bad)" in loaded.problems[0]
    assert loaded.problems[1].startswith(f"{path}:12:") and "'label' is 'maybe'" in loaded.problems[1]


def test_answers_labelled_bad_train_only_the_method_that_learns_from_them(tmp_path, default_model):
    """SFT on thumbs-down answers would teach them: every method but KTO leaves them out."""
    from tuneforge.core.config import RunConfig
    from tuneforge.core.data.prepare import DataRecipe, prepare
    from tuneforge.core.train.setup import load_tokenizer

    path = write_jsonl(tmp_path / "feedback.jsonl", [
        {"prompt": "Hi", "completion": "Hello!", "label": True}, {"prompt": "Hi", "completion": "Go away.", "label": False},
        {"prompt": "Bye", "completion": "See you!"},
    ])
    tokenizer, loaded = load_tokenizer(default_model), load_examples(path)
    for method, kept in (("lora", 2), ("kto", 3)):
        recipe = DataRecipe.from_config(RunConfig(model="m", data=str(path), method=method, eval_split=0))
        assert len(prepare(loaded, tokenizer, recipe).train) == kept, method
