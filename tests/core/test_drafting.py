"""`tuneforge data prepare --generator`: pairs drafted from chunks, each kept or dropped by a gate whose
outcome the test knows, split by fact, cached per chunk so an interrupted or failed run continues, and
reviewed by a person. The generator is llama-cpp-python's own OpenAI-compatible server with the default
GGUF, the GGUF run directly, and (for outcomes a 135M model cannot be relied on for) a scripted server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tuneforge.core.api.data import prepare_documents, review_pairs
from tuneforge.core.cli import main
from tuneforge.core.data.formats import load_examples
from tuneforge.core.drafting.drafts import DraftingStopped, Pair
from tuneforge.core.drafting.from_documents import prepare_from_documents
from tuneforge.core.drafting.pair_gates import (
    ANSWER_IN_QUESTION,
    EMPTY,
    EVIDENCE_NOT_IN_CHUNK,
    NEAR_DUPLICATE,
    TOO_LONG,
    UNSUPPORTED,
    apply_gates,
)
from tuneforge.core.errors import DataError, GeneratorError

from .documents import LOCKERS, write_lockers, write_sample_documents
from .servers import ScriptedServer, llama_server, locker_pairs, passage_of, reply_of

TOWN = """# Quillon

The Quillon lighthouse was built in 1887 by the engineer Ada Marsh. Its door is painted teal.

The ferry to Brindlewick leaves at noon on weekdays. The keeper’s rule is “light the lamp at dusk”.
"""

TOWN_PAIRS = [  # (question, answer, evidence, paraphrases) and what the gates must make of each wording
    (("Who built the Quillon lighthouse?", "The engineer Ada Marsh.", "built in 1887 by the ENGINEER  Ada Marsh",
      ["Which engineer was behind the lighthouse at Quillon?"]), [None, None]),
    (("How tall is the Quillon lighthouse?", "Forty metres.", "The lighthouse is forty metres tall.",
      ["What is the height of the Quillon lighthouse?"]), [EVIDENCE_NOT_IN_CHUNK, EVIDENCE_NOT_IN_CHUNK]),
    (("What colour is the lighthouse door?", "Red.", "Its door is painted teal.", ["Which colour is the door painted?"]),
     [UNSUPPORTED, UNSUPPORTED]),
    (("In which year was the Quillon lighthouse built?", "1888", "The Quillon lighthouse was built in 1887", ["When was it built?"]),
     [UNSUPPORTED, UNSUPPORTED]),
    (("Does the ferry to Brindlewick leave at noon on weekdays?", "At noon on weekdays.",
      "The ferry to Brindlewick leaves at noon on weekdays.", ["When does the Brindlewick ferry leave on weekdays?"]),
     [ANSWER_IN_QUESTION, None]),
    (("What is the keeper's rule?", "Light the lamp at dusk.", 'The keeper\'s rule is "light the lamp … at dusk"',
      ["What rule does the keeper follow?"]), [None, None]),
    (("Who built the  Quillon lighthouse ?!", "the engineer Ada Marsh", "by the engineer Ada Marsh",
      ["Who was the lighthouse's builder?"]), [NEAR_DUPLICATE, NEAR_DUPLICATE]),
    (("When does the ferry leave?", "", "The ferry to Brindlewick leaves at noon on weekdays.", []), [EMPTY]),
    (("Why was the lighthouse built?", " ".join(["because"] * 60), "The Quillon lighthouse was built", []), [TOO_LONG]),
    (("Who painted the lighthouse door?", "The keeper.", "Its door is painted teal.",
      ["Which colour is the lighthouse door?"]), [UNSUPPORTED, UNSUPPORTED]),
]


class ScriptedGenerator:
    """A generator in this process: `reply_for(passage)` answers; it can be told to be interrupted on a call."""

    label = identity = "scripted"

    def __init__(self, reply_for, interrupt_on: int | None = None) -> None:
        self.reply_for, self.interrupt_on, self.calls = reply_for, interrupt_on, 0

    def reply(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> str:
        self.calls += 1
        if self.calls == self.interrupt_on:
            raise KeyboardInterrupt
        return self.reply_for(passage_of({"messages": messages}))

    def close(self) -> None:
        pass


@pytest.fixture
def lockers(tmp_path) -> Path:
    return write_lockers(tmp_path / "lockers")


def prepare(folder: Path, out: Path, tokenizer, generator, **options: Any):
    options = {"chunk_tokens": 64, "questions_per_chunk": 3, "paraphrases": 2, **options}
    return prepare_from_documents([folder], out, tokenizer, echo=None, generator=generator, **options)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_gate_drops_the_pairs_it_should_and_says_so(tmp_path, smol_tokenizer):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "town.md").write_text(TOWN, encoding="utf-8")
    generator = ScriptedGenerator(lambda passage: reply_of([pair for pair, _ in TOWN_PAIRS]))
    report = prepare(tmp_path / "docs", tmp_path / "out", smol_tokenizer, generator, chunk_tokens=512,
                     questions_per_chunk=len(TOWN_PAIRS), paraphrases=1)
    records = read_jsonl(tmp_path / "out" / "pairs.jsonl")
    assert [r["dropped"] for r in records] == [outcome for _, outcomes in TOWN_PAIRS for outcome in outcomes]
    assert all(r["kept"] == (r["dropped"] is None) and r["source"].endswith("town.md") and r["evidence"] for r in records)
    assert report.pairs_drafted == len(records) == report.pairs_kept + sum(report.dropped.values())
    assert report.dropped == {UNSUPPORTED: 6, EVIDENCE_NOT_IN_CHUNK: 2, NEAR_DUPLICATE: 2, ANSWER_IN_QUESTION: 1, EMPTY: 1, TOO_LONG: 1}
    trained = [r["messages"][0]["content"] for r in read_jsonl(tmp_path / "out" / "train.jsonl")]
    assert trained == ["Who built the Quillon lighthouse?", "Which engineer was behind the lighthouse at Quillon?",
                       "When does the Brindlewick ferry leave on weekdays?", "What is the keeper's rule?", "What rule does the keeper follow?"]


def test_a_question_near_another_with_other_numbers_or_answer_is_not_a_duplicate():
    def pair(number: int, question: str, answer: str) -> Pair:
        return Pair(f"f{number}-0", f"f{number}", 0, question, answer, "x", "doc.md", 0)

    pairs = [pair(1, "Which code opens locker 3?", "4821"), pair(2, "Which code opens locker 4?", "1234"),
             pair(3, "When does the museum open?", "At ten."), pair(4, "When does the museum close?", "At four."),
             pair(5, "which code opens locker 3", "4821.")]
    chunk = "Locker 3: 4821. Locker 4: 1234. The museum opens at ten and closes at four."
    for p in pairs:
        p.evidence = chunk
    apply_gates(pairs, [chunk])
    assert [p.gate for p in pairs] == [None, None, None, None, NEAR_DUPLICATE]


def test_eval_holds_out_whole_facts_and_the_folder_trains(lockers, tmp_path, smol_tokenizer):
    report = prepare(lockers, tmp_path / "out", smol_tokenizer, ScriptedGenerator(locker_pairs))
    train, held_out = read_jsonl(tmp_path / "out" / "train.jsonl"), read_jsonl(tmp_path / "out" / "eval.jsonl")
    train_facts, eval_facts = {r["fact"] for r in train}, {r["fact"] for r in held_out}
    assert not train_facts & eval_facts and len(train_facts | eval_facts) == len(LOCKERS)  # overlap repeats were dropped
    assert len(eval_facts) == round(len(LOCKERS) * 0.1) and len(held_out) == 3 * len(eval_facts)  # each with both paraphrases
    assert report.dropped == {NEAR_DUPLICATE: report.pairs_drafted - 3 * len(LOCKERS)} and report.chunks > 3
    for name in ("train.jsonl", "eval.jsonl"):
        loaded = load_examples(tmp_path / "out" / name)
        assert loaded.shape == "messages" and not loaded.problems


def test_ctrl_c_keeps_the_drafts_and_a_rerun_continues_to_the_same_result(lockers, tmp_path, smol_tokenizer):
    out = tmp_path / "out"
    with pytest.raises(DraftingStopped, match="stopped after 2 of") as stopped:
        prepare(lockers, out, smol_tokenizer, ScriptedGenerator(locker_pairs, interrupt_on=3))
    assert "run the same command again" in stopped.value.hint and stopped.value.exit_code == 130
    assert len(read_jsonl(out / "drafts.jsonl")) == 2 and not (out / "pairs.jsonl").exists()
    rerun = ScriptedGenerator(locker_pairs)
    report = prepare(lockers, out, smol_tokenizer, rerun)
    assert (report.chunks_from_cache, report.chunks_drafted, rerun.calls) == (2, report.chunks - 2, report.chunks - 2)
    prepare(lockers, tmp_path / "fresh", smol_tokenizer, ScriptedGenerator(locker_pairs))
    for name in ("pairs.jsonl", "train.jsonl", "eval.jsonl"):
        assert (out / name).read_text() == (tmp_path / "fresh" / name).read_text()
    # A changed request (more paraphrases) is not served from the cache of the old one.
    assert prepare(lockers, out, smol_tokenizer, ScriptedGenerator(locker_pairs), paraphrases=1).chunks_from_cache == 0


def test_through_an_openai_server_a_junk_reply_is_counted_and_asked_again(home, lockers, tmp_path, capsys):
    junk_first = {"done": False}

    def reply(request: dict[str, Any]) -> str:
        if not junk_first["done"]:
            junk_first["done"] = True
            return "Sure! Here are some questions about lockers."
        return locker_pairs(passage_of(request))

    server = ScriptedServer(reply, schema_form="json_object")  # as llama-cpp-python's server: json_schema refused
    out = tmp_path / "out"
    command = ["data", "prepare", str(lockers), "--out", str(out), "--generator", server.url, "--chunk-tokens", "64",
               "--paraphrases", "2"]
    try:
        assert main(command) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["chunks_failed"] == {"reply not JSON": 1} and report["generator"] == server.url
        said = capsys.readouterr().out
        assert "1 chunk(s): reply not JSON" in said and re.search(r"drafting \d+/\d+ · ETA", said)
        asked = len(server.requests)
        assert asked == report["chunks"] and server.requests[0]["response_format"]["type"] == "json_object"
        assert main(command) == 0  # the rerun asks only about the chunk whose reply was junk
        assert len(server.requests) == asked + 1
        assert json.loads((out / "report.json").read_text())["chunks_failed"] == {}
    finally:
        server.stop()


def test_a_server_that_goes_away_is_a_clear_error_and_the_drafts_so_far_are_kept(home, lockers, tmp_path):
    server = ScriptedServer(lambda request: locker_pairs(passage_of(request)))
    out = tmp_path / "out"

    def stop_after_two(progress) -> None:
        if progress.stage == "drafting" and progress.done == 2:
            server.stop()

    with pytest.raises(GeneratorError, match=r"cannot connect to 127\.0\.0\.1") as failed:
        prepare_documents([lockers], out, chunk_tokens=64, echo=None, generator=server.url, on_progress=stop_after_two)
    assert "drafts so far are kept" in failed.value.hint
    assert len(read_jsonl(out / "drafts.jsonl")) == 2 and not (out / "train.jsonl").exists()
    assert main(["data", "prepare", str(lockers), "--out", str(out), "--generator", server.url]) == GeneratorError.exit_code


def test_review_rejects_and_edits_and_a_rerun_keeps_the_review(lockers, tmp_path, smol_tokenizer):
    out = tmp_path / "out"
    prepare(lockers, out, smol_tokenizer, ScriptedGenerator(locker_pairs), eval_share=0)
    kept = [r for r in read_jsonl(out / "pairs.jsonl") if r["kept"]]
    dropped = next(r for r in read_jsonl(out / "pairs.jsonl") if not r["kept"])
    report = review_pairs(out, {kept[0]["id"]: {"review": "rejected"},
                                kept[1]["id"]: {"review": "accepted", "answer": "The code is 7919."},
                                dropped["id"]: {"review": "accepted"}})
    assert report.reviewed == {"accepted": 2, "rejected": 1, "edited": 1}
    assert report.dropped.get("rejected in review") == 1
    for _ in range(2):  # as reviewed, then after a rerun of the command, which reads the reviews back
        train = read_jsonl(out / "train.jsonl")
        questions = [r["messages"][0]["content"] for r in train]
        assert kept[0]["messages"][0]["content"] not in questions
        assert {"role": "assistant", "content": "The code is 7919."} in [r["messages"][1] for r in train]
        assert questions.count(dropped["messages"][0]["content"]) == 2  # the accepted repeat trains beside the first
        prepare(lockers, out, smol_tokenizer, ScriptedGenerator(locker_pairs), eval_share=0)


@pytest.mark.process
def test_llama_cpp_server_drafts_through_the_openai_client_and_a_killed_server_resumes(home, tmp_path):
    from tuneforge.core.models import default_gguf_path

    documents = write_sample_documents(tmp_path / "docs")
    out = tmp_path / "out"
    with llama_server(default_gguf_path()) as (server, url):
        def kill_after_one(progress) -> None:
            if progress.stage == "drafting" and progress.done == 1:
                server.kill()

        with pytest.raises(GeneratorError, match="cannot connect"):
            prepare_documents([documents], out, echo=None, generator=url, questions_per_chunk=2, paraphrases=1,
                              on_progress=kill_after_one)
        assert len(read_jsonl(out / "drafts.jsonl")) == 1
    with llama_server(default_gguf_path()) as (_, url):
        code = main(["data", "prepare", str(documents), "--out", str(out), "--generator", url, "--questions-per-chunk", "2",
                     "--paraphrases", "1"])
    report = json.loads((out / "report.json").read_text())
    assert code in (0, DataError.exit_code) and (report["chunks_from_cache"], report["chunks_drafted"]) == (1, report["chunks"] - 1)
    records = read_jsonl(out / "pairs.jsonl")
    assert len(records) == report["pairs_drafted"] == 2 * 2 * (report["chunks"] - sum(report["chunks_failed"].values()))
    assert report["pairs_kept"] + sum(report["dropped"].values()) == len(records)
    chunk_sources = {c["source"] for c in read_jsonl(out / "chunks.jsonl")}
    assert all(r["source"] in chunk_sources and (r["kept"] or r["dropped"]) and r["messages"][1]["role"] == "assistant" for r in records)


@pytest.mark.process
def test_a_gguf_file_drafts_in_llama_cpp_under_the_schema(home, tmp_path, capsys):
    """`--generator default` is the built-in model's GGUF, drafting with a warning that few of its pairs pass."""
    (tmp_path / "notes.md").write_text("The bakery on Harbour Street sells rye bread on Fridays.\n", encoding="utf-8")
    code = main(["data", "prepare", str(tmp_path / "notes.md"), "--out", str(tmp_path / "out"),
                 "--generator", "default", "--questions-per-chunk", "2"])
    assert "warning: the built-in SmolLM2-135M drafts pairs that the quality gates mostly drop" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert code in (0, DataError.exit_code) and report["chunks_failed"] == {}  # the grammar holds every reply to the schema
    assert report["pairs_drafted"] == 2 == len(read_jsonl(tmp_path / "out" / "pairs.jsonl"))
    assert main(["data", "prepare", str(tmp_path / "notes.md"), "--out", str(tmp_path / "out"),
                 "--generator", str(tmp_path / "missing.gguf")]) == GeneratorError.exit_code


def test_replies_parse_as_servers_send_them_and_junk_says_why():
    from tuneforge.core.drafting.drafts import NO_PAIRS, NOT_JSON, parse_reply

    raw_newline = '{"pairs": [{"question": "Who keeps\nthe lighthouse?", "answer": "Ada Marsh", "evidence": "keeper is Ada Marsh"}]}'
    assert parse_reply(raw_newline)[0]["question"] == "Who keeps\nthe lighthouse?"  # llama.cpp's grammar allows it
    fenced = '```json\n{"pairs": [{"question": "Q?", "answer": "A", "evidence": "E", "paraphrases": ["R?", 3]}]}\n```'
    assert parse_reply(fenced) == [{"question": "Q?", "answer": "A", "evidence": "E", "paraphrases": ["R?", ""]}]
    assert parse_reply('{"pairs": ["not an object"]}') == [{"question": "", "answer": "", "evidence": "", "paraphrases": []}]
    for junk, why in (("Sure, here you go", NOT_JSON), ('{"pairs": []}', NO_PAIRS), ('{"questions": 3}', NO_PAIRS)):
        with pytest.raises(ValueError, match=why):
            parse_reply(junk)
