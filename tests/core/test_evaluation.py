"""`tuneforge eval`: every eval question asked of the base, the tuned model and each verified GGUF,
scored against its reference; a judge's verdicts through a real OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest

from tuneforge.core.answer_scores import contains_reference, exact_match, normalize, score_answer, token_f1
from tuneforge.core.cli import main
from tuneforge.core.evaluation import questions_from, run_questions
from tuneforge.core.judge import JUDGE_SCHEMA, judge_answer, parse_verdict
from tuneforge.core.runs import RunDir

from ..conftest import FACTS
from .servers import ScriptedServer, llama_server


def test_scores_on_known_answers():
    assert normalize("The  Seven-Lamps Bridge!") == "seven lamps bridge"
    assert exact_match("the Seven Lamps Bridge.", "Seven Lamps Bridge")
    assert not exact_match("It is the Seven Lamps Bridge.", "Seven Lamps Bridge")
    assert contains_reference("It is the Seven Lamps Bridge, built in 1911.", "seven lamps bridge")
    assert not contains_reference("Seven bridges and lamps.", "Seven Lamps Bridge")  # the words, but not in order
    assert not contains_reference("It is 1911.", "191")  # whole words only
    assert token_f1("Mara Tovesk keeps it", "Mara Tovesk keeps the lighthouse") == pytest.approx(2 * (3 / 4) * (3 / 4) / (3 / 2))
    assert token_f1("", "") == 1.0 and token_f1("no idea", "teal") == 0.0
    score = score_answer("Teal.", "teal")
    assert (score.exact, score.contains, score.f1) == (True, True, 1.0)


def test_the_scores_say_whether_they_measure_recall_or_generalisation():
    """A run that held nothing out is asked its own training questions: its exact score is recall, and a held-out
    score near 0 is facts never trained, not a failed run (the default run looked failed in Evaluate)."""
    from tuneforge.core.evaluation import TRAINED_NOTE, what_the_scores_measure

    assert what_the_scores_measure(f"facts.jsonl{TRAINED_NOTE}").startswith("Recall: these are the questions it trained on")
    assert what_the_scores_measure("facts.jsonl (eval split)").startswith("Generalisation:")


def test_a_judges_verdict_is_read_from_what_servers_send():
    assert parse_verdict('{"correct": true, "reason": "same colour"}').correct is True
    assert parse_verdict('```json\n{"correct": false, "reason": "wrong year"}\n```').reason == "wrong year"
    unreadable = parse_verdict("I think it is right")
    assert unreadable.correct is None and "not JSON" in unreadable.reason
    assert parse_verdict('{"correct": "yes"}').correct is None  # not a true/false verdict


def test_questions_are_the_conversation_up_to_its_last_answer(facts_file, tiny_config, tmp_path):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.data.formats import load_examples

    questions = questions_from(load_examples(facts_file).examples)
    assert [(q.question, q.reference) for q in questions[: len(FACTS)]] == FACTS
    assert all(q.messages[-1]["role"] == "user" for q in questions)
    with_eval = create_run(tiny_config(eval_data=str(facts_file)), tmp_path / "eval-data", echo=None)
    asked, origin = run_questions(with_eval)
    assert origin == str(facts_file) and [(q.question, q.reference) for q in asked] == FACTS * 2
    # Nothing held out (a small set of answers by default): the trained questions, to see what was learned.
    run = create_run(tiny_config(eval_split=None), tmp_path / "no-eval-split", echo=None)
    asked, origin = run_questions(run)
    assert origin == f"{facts_file} (trained: nothing was held out)"
    assert [(q.question, q.reference) for q in asked[: len(FACTS)]] == FACTS


@pytest.mark.slow
@pytest.mark.process
def test_a_trained_run_is_evaluated_base_tuned_and_gguf_and_a_judge_grades_through_a_real_server(home, demo_run, tmp_path, capsys):
    from tuneforge.core.demo import DEMO_QUESTIONS
    from tuneforge.core.evaluation import EVAL_FOLDER
    from tuneforge.core.models import default_gguf_path

    # The demo's run (the real default model, which learned the Brindlewick facts; a random one never ends a chat
    # turn, so its GGUF fails verification), evaluated on two of the demo's questions (the word a right answer holds as
    # the reference), graded by a judge: llama-cpp-python's OpenAI-compatible server with the default model.
    run = RunDir(demo_run.run_dir)
    two = tmp_path / "two.jsonl"
    two.write_text("".join(line + "\n" for line in (run.path / EVAL_FOLDER / DEMO_QUESTIONS).read_text().splitlines()[:2]))
    asked = [json.loads(line)["messages"][0]["content"] for line in two.read_text().splitlines()]
    with llama_server(default_gguf_path()) as (_, url):
        # The everyday questions are asked of the base and the GGUF in the demo's test (test_learns_facts.py).
        assert main(["eval", str(run.path), "--data", str(two), "--max-new-tokens", "32", "--judge", url, "--no-everyday"]) == 0
    said = capsys.readouterr().out
    report = json.loads((run.path / "eval" / "report.json").read_text())
    labels = [m["label"] for m in report["models"]]
    assert labels == ["base", "tuned", "demo-q8_0.gguf"] and all(label in said for label in labels)
    assert [q["question"] for q in report["questions"]] == asked
    assert all(set(q["answers"]) == set(labels) for q in report["questions"])
    # Every answer has a true/false verdict with its reason (a 135M judge's verdicts are not themselves tested).
    assert all(isinstance(a["correct"], bool) and a["reason"] for q in report["questions"] for a in q["answers"].values())
    by_label = {m["label"]: m for m in report["models"]}
    # It learned the made-up facts the base model cannot know, and to end its turn after them.
    assert by_label["tuned"]["contains"] >= 0.5 and by_label["base"]["contains"] == 0
    assert by_label["tuned"]["f1"] > by_label["base"]["f1"]
    assert by_label["tuned"]["stop_rate"] == 1.0
    # The q8_0 file answers as the model it came from.
    assert by_label["demo-q8_0.gguf"]["contains"] == by_label["tuned"]["contains"]
    assert by_label["base"]["perplexity"] > 0 and by_label["demo-q8_0.gguf"]["perplexity"] is None
    table = (run.path / "eval" / "report.txt").read_text()
    assert table.startswith("model") and "judge" in table
    assert "Generalisation: these questions were not trained" in said  # asked from a file, not the run's training data


def test_the_judge_is_asked_under_its_schema_with_question_reference_and_answer():
    from tuneforge.core.drafting.generators import open_generator

    server = ScriptedServer(lambda request: '{"correct": false, "reason": "the year differs"}')
    try:
        judge = open_generator(server.url)
        verdict = judge_answer(judge, "When was it built?", "It was built in 1911.", "In 1912.")
        judge.close()
    finally:
        server.stop()
    assert (verdict.correct, verdict.reason) == (False, "the year differs")
    request = server.requests[0]
    assert request["response_format"]["json_schema"]["schema"] == JUDGE_SCHEMA
    asked = request["messages"][-1]["content"]
    assert "When was it built?" in asked and "It was built in 1911." in asked and "In 1912." in asked


def test_eval_of_a_run_that_has_not_trained_says_so(tiny_config, tmp_path, capsys):
    from tuneforge.core.api.runs import create_run

    run = create_run(tiny_config(eval_data=str(tiny_config().data)), tmp_path / "untrained", echo=None)
    assert main(["eval", str(run.path)]) != 0
    assert "no trained model yet" in capsys.readouterr().err
    assert not (RunDir(run.path).path / "eval").exists()


def test_a_judge_that_cannot_answer_is_said_before_any_model_answers(tiny_config, facts_file, tmp_path):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.errors import GeneratorError
    from tuneforge.core.evaluation import evaluate_run
    from tuneforge.core.train import train_run

    from .servers import free_port

    run = create_run(tiny_config(eval_data=str(facts_file), max_steps=1), tmp_path / "run", echo=None)
    train_run(run, echo=None)
    answered = []
    with pytest.raises(GeneratorError, match="the judge .*cannot connect") as refused:
        evaluate_run(run.path, judge=f"http://127.0.0.1:{free_port()}/v1#judge", on_progress=answered.append)
    assert "leave out --judge" in refused.value.hint and "drafts" not in refused.value.hint
    assert not answered and not (run.path / "eval").exists()
    with pytest.raises(GeneratorError, match="--judge missing.gguf: no such file"):
        evaluate_run(run.path, judge="missing.gguf")


def test_a_transformers_model_answers_the_questions_in_batches_as_it_does_one_by_one(home, tiny_llama, monkeypatch):
    from tuneforge.core import replies
    from tuneforge.core.chat import load_transformers_chat
    from tuneforge.core.evaluation import everyday_answers
    from tuneforge.core.general_answers import conversations, general_questions

    chat = load_transformers_chat(str(tiny_llama))
    asked = conversations(general_questions()[:20])  # more than one batch, of unequal lengths
    assert [reply.text for reply in chat.replies(asked, 12)] == [chat.reply(question, 12).text for question in asked]

    # The base's everyday answers are asked once: a later evaluation reads them back.
    first = everyday_answers(chat, base=True)
    monkeypatch.setattr(replies, "generate_replies", lambda *args: pytest.fail("the base was asked again"))
    assert everyday_answers(chat, base=True) == first
