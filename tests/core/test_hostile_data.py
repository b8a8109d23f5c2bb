"""Hostile dataset files: every one gets a clean DataError or FILE:LINE problems, never a traceback.

A property-based test throws thousands of generated records (broken JSON, wrong types,
empty and odd fields, binary junk, lone surrogates) at the loaders and at tokenization.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuneforge.core.data.formats import load_examples
from tuneforge.core.data.prepare import DataRecipe, prepare
from tuneforge.core.data.readers import MAX_RECORD_BYTES
from tuneforge.core.data.records import CHAT_ROLES, SHAPES, RecordError, normalise_record
from tuneforge.core.errors import DataError

FIELDS = ["messages", "conversations", "role", "content", "from", "value", "prompt", "completion", "chosen",
          "rejected", "instruction", "input", "output", "text", "system"]
ROLES = ["user", "assistant", "system", "human", "gpt", "tool", ""]
LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b"])
TEXTS = st.text(max_size=24) | LONE_SURROGATES | st.sampled_from(["", " ", "\n", "Hello!", "\x00"])
LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | TEXTS | st.sampled_from(ROLES)
KEYS = st.sampled_from(FIELDS) | st.text(max_size=6)
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=16)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(ROLES) | VALUES, "content": TEXTS | VALUES})
RECORDS = (
    st.dictionaries(KEYS, VALUES, max_size=6)
    | st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=4)})
    | st.fixed_dictionaries({"prompt": TEXTS, "completion": TEXTS})
    | st.fixed_dictionaries({"prompt": TEXTS, "chosen": TEXTS | st.lists(MESSAGE, max_size=3), "rejected": TEXTS})
    | st.fixed_dictionaries({"instruction": TEXTS, "input": TEXTS | VALUES, "output": TEXTS})
    | st.fixed_dictionaries({"text": TEXTS})
)
JUNK = st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b""))


def encoded(record: dict, ascii_only: bool) -> bytes:
    return json.dumps(record, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass")


LINES = st.one_of(
    st.tuples(RECORDS, st.booleans()).map(lambda pair: encoded(*pair)),
    st.tuples(RECORDS, st.integers(1, 30)).map(lambda pair: encoded(pair[0], True)[: pair[1]]),  # cut short
    JUNK,
    st.sampled_from([b"", b"   ", b"[1, 2]", b'"just a string"', b"null", b"{}", b"[" * 5000 + b"]" * 5000]),
)


def is_blank(raw: bytes) -> bool:
    try:
        return not raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


def check_example(example, path: Path, line_count: int) -> None:
    """What every loaded example guarantees to the code after it."""
    location = re.fullmatch(re.escape(str(path)) + r":(\d+)", example.source)
    assert location and 1 <= int(location.group(1)) <= line_count
    if example.text is not None:
        assert isinstance(example.text, str) and example.text.strip()
        return
    # An answer to learn from, or (a record of a prompt alone, for GRPO) a prompt that ends with its question.
    assert example.messages and (any(m["role"] == "assistant" for m in example.messages) or example.messages[-1]["role"] == "user")
    for message in example.messages:
        assert set(message) == {"role", "content"} and message["role"] in CHAT_ROLES
        assert isinstance(message["content"], str)
        message["content"].encode("utf-8")  # no lone surrogates reach a tokenizer


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(LINES, min_size=1, max_size=20))
def test_generated_jsonl_files_load_or_fail_cleanly(tmp_path_factory, smol_tokenizer, lines):
    path = tmp_path_factory.mktemp("hostile") / "data.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        loaded = load_examples(path)
    except DataError as exc:
        assert str(path) in exc.message
        return
    line_count = len(lines)
    for problem in loaded.problems:
        location = re.match(re.escape(str(path)) + r":(\d+): ", problem)
        assert location and 1 <= int(location.group(1)) <= line_count, problem
    for example in loaded.examples:
        check_example(example, path, line_count)
    # Every record is accounted for: trained on, or reported.
    # A byte-order mark opening the file is not content: a first line that is only a mark is blank.
    content = [lines[0].removeprefix(b"\xef\xbb\xbf"), *lines[1:]]
    assert len(loaded.examples) + len(loaded.problems) == sum(not is_blank(raw) for raw in content)
    if loaded.examples and not loaded.problems:
        try:
            prepared = prepare(loaded, smol_tokenizer, DataRecipe(64, 0.0))
        except DataError:
            return
        assert all(len(t.input_ids) <= 64 for t in prepared.train)


@settings(max_examples=3000, deadline=None)
@given(shape=st.sampled_from([name for name, _ in SHAPES]), record=RECORDS | st.dictionaries(KEYS, VALUES, max_size=6))
def test_every_shape_normalises_a_record_or_says_what_is_wrong(shape, record):
    try:
        example = normalise_record(shape, record, "data.jsonl:1")
    except RecordError as exc:
        assert str(exc)
        return
    check_example(example, Path("data.jsonl"), 1)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("\ufeff".encode("utf-16"), "UTF-16"),
        ('{"text": "a"}\n'.encode("utf-16-le").join([b"\xff\xfe", b""]), "UTF-16"),
        (b"PAR1\x00\x00\x15\x04" + bytes(range(256)) * 4, "binary data"),
        (b"", "holds no records"),
        (b"\n \n\t\n", "holds no records"),
        (json.dumps({"question": "Hi", "answer": "Hello"}).encode(), "cannot tell the dataset's shape"),
    ],
)
def test_files_that_are_not_datasets_are_refused_with_a_hint(tmp_path, content, fragment):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_examples(path)
    assert fragment in info.value.message and str(path) in info.value.message and info.value.hint


def test_odd_records_are_named_by_line_and_the_rest_still_load(tmp_path):
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    lines = [
        b"\xef\xbb\xbf" + json.dumps({"mesages": []}).encode(),  # a byte-order mark, and a typo before any good record
        json.dumps(chat).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "x"}]}',
        b'{"text": "' + b"a" * (MAX_RECORD_BYTES + 10) + b'"}',  # enormous: skipped unread
        b"\x89\xff\xfe junk",
        json.dumps(chat).encode(),
    ]
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    loaded = load_examples(path)
    assert loaded.shape == "messages" and [e.source for e in loaded.examples] == [f"{path}:2", f"{path}:7"]
    problems = "\n".join(loaded.problems)
    assert f"{path}:1: missing field(s) messages" in problems
    assert f"{path}:3: not usable JSON: nested too deeply" in problems
    assert f"{path}:4: messages[0].content holds an invalid character" in problems
    assert f"{path}:5: a record longer than 16 MiB" in problems
    assert f"{path}:6: not UTF-8 text" in problems


def test_a_json_array_file_loads_with_line_numbers(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text('[\n  {"instruction": "Hi", "output": "Hello"},\n  {"instruction": "", "output": "x"}\n]\n')
    loaded = load_examples(path)
    assert loaded.shape == "alpaca" and loaded.examples[0].source == f"{path}:2"
    assert loaded.problems == [f"{path}:3: field 'instruction' is empty"]
    path.write_text('[\n  {"instruction": "Hi", "output": "Hello"},\n  {"instruction": "Hi", "out')
    with pytest.raises(DataError, match=f"{re.escape(str(path))}:3: not valid JSON"):
        load_examples(path)


def test_a_conversation_the_chat_template_refuses_is_named(tmp_path, smol_tokenizer):
    import copy

    strict = copy.deepcopy(smol_tokenizer)
    strict.chat_template = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    )
    good = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    bad = {"messages": [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yes"}]}
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, bad)) + "\n")
    with pytest.raises(DataError) as info:
        prepare(load_examples(path), strict, DataRecipe(64, 0.0))
    assert f"{path}:2: Conversation roles must alternate" in info.value.message
    assert "alternate" in info.value.hint
