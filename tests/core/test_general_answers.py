"""Forgetting in answers: the everyday questions, their scoring, the bookkeeping of what training lost, and replay."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from types import SimpleNamespace

import pytest

from tuneforge.core.answer_scores import normalize
from tuneforge.core.config import DEFAULT_EPOCHS, REPLAY_KL, REPLAY_RATIO, SMALL_DATA_MAX_EPOCHS, RunConfig
from tuneforge.core.errors import ConfigError
from tuneforge.core.events import TrainResult
from tuneforge.core.general_answers import (
    GeneralQuestion,
    compare_answers,
    forgetting_line,
    general_questions,
    read_answers,
    recorded_base_answers,
    write_answers,
)
from tuneforge.core.hardware import Hardware
from tuneforge.core.reply import Reply
from tuneforge.core.settle import DataFacts, settle_replay, settle_run
from tuneforge.core.train.replay import answered_examples, general_prompts, replay_prompts, within_budget


def test_the_everyday_questions_are_about_a_hundred_and_none_is_a_replayed_prompt():
    questions = general_questions()
    assert 100 <= len(questions) <= 130
    assert len({q.question for q in questions}) == len(questions)
    assert all(q.expect and q.topic for q in questions)
    # Replay trains on its prompts; a probe question among them would measure memory, not forgetting.
    assert not {normalize(q.question) for q in questions} & {normalize(p) for p in replay_prompts()}


def test_an_answer_is_right_when_it_holds_an_expected_word_and_keeps_to_the_asked_length():
    hours = GeneralQuestion("How many hours are there in a day?", ("24", "twenty-four"))
    assert hours.is_right("There are 24 hours in a day.")
    assert hours.is_right("Twenty-four.")
    assert not hours.is_right("There are 8 hours in a day.")
    assert not GeneralQuestion("What is 2 + 2?", ("4",)).is_right("It is 24.")  # whole words only
    one_word = GeneralQuestion("Answer in one word: what color is snow?", ("white",), max_words=3)
    assert one_word.is_right("White.")
    assert not one_word.is_right("Snow is white because it reflects every colour of light.")


def test_a_question_the_base_got_right_and_the_tuned_model_gets_wrong_is_listed_as_lost(tmp_path):
    questions = [GeneralQuestion("What is the capital of Italy?", ("Rome",)),
                 GeneralQuestion("What is the opposite of \"hot\"?", ("cold",)),
                 GeneralQuestion("Who discovered penicillin?", ("Fleming",))]
    before = ["The capital of Italy is Rome.", "Cold.", "Marie Curie discovered penicillin."]
    after = ["The capital of Italy is Dunrasket.", "The opposite of hot is cold.", "Alexander Fleming."]

    kept = compare_answers(questions, before, after)

    assert (kept.asked, kept.known, kept.kept, kept.gained) == (3, 2, 1, 1)
    assert [(lost.question, lost.before, lost.after) for lost in kept.lost] == [
        ("What is the capital of Italy?", "The capital of Italy is Rome.", "The capital of Italy is Dunrasket.")]
    assert kept.summary() == "kept 1 of 2 everyday answers the base got right"


def test_the_answers_file_holds_every_question_and_reads_back(tmp_path):
    questions = general_questions()
    before = [q.expect[0] for q in questions]
    after = list(before)
    after[0] = "I do not know."
    kept = compare_answers(questions, before, after)
    write_answers(tmp_path / "general-answers.json", before, after, kept)

    record = json.loads((tmp_path / "general-answers.json").read_text(encoding="utf-8"))
    assert len(record["questions"]) == len(questions)
    assert record["questions"][0]["right_before"] and not record["questions"][0]["right_after"]
    again = read_answers(tmp_path / "general-answers.json")
    assert (again.known, again.kept) == (len(questions), len(questions) - 1)
    assert again.lost[0].after == "I do not know."
    assert read_answers(tmp_path / "missing.json") is None
    # An evaluation takes the base's answers from the file, unless the questions have changed since it was written.
    assert recorded_base_answers(tmp_path / "general-answers.json") == before
    record["questions"][3]["question"] = "A question asked no more?"
    (tmp_path / "changed.json").write_text(json.dumps(record), encoding="utf-8")
    assert recorded_base_answers(tmp_path / "changed.json") is None
    assert recorded_base_answers(tmp_path / "missing.json") is None


def test_the_forgetting_line_puts_answers_before_perplexity():
    result = TrainResult(steps=1, final_loss=0.1, eval_loss=None, runtime_s=1, tokens_per_second=1, trainable_params=1,
                         total_params=2, peak_memory_gb=1, general_perplexity_before=17.64, general_perplexity_after=21.82,
                         general_known=20, general_kept=13)
    assert forgetting_line(result) == ("forgetting: kept 13 of 20 everyday answers the base got right; "
                                       "general-text perplexity 17.64 → 21.82 (+24%)")
    assert forgetting_line(TrainResult(1, 0.1, None, 1, 1, 1, 2, 1)) is None


def test_replay_keeps_only_answers_that_ended_their_turn():
    prompts = ["Hi there!", "Write a haiku about the sea.", "What is 12 multiplied by 7?"]
    replies = [Reply("Hello! How can I help?", True), Reply("Waves fold and unfold and", False), Reply("", True)]
    examples = answered_examples(prompts, replies)
    assert [e.messages for e in examples] == [[{"role": "user", "content": "Hi there!"},
                                               {"role": "assistant", "content": "Hello! How can I help?"}]]
    assert examples[0].source == "general-prompts.txt:1"


def test_replay_mixes_chat_prompts_with_known_facts_and_keeps_to_its_token_budget():
    prompts = replay_prompts()
    assert len(prompts) == len(set(prompts)) > len(general_prompts())
    assert prompts[0] == general_prompts()[0] and prompts[2] == general_prompts()[1]  # taken in turn
    examples = [SimpleNamespace(input_ids=[0] * n) for n in (30, 50, 40, 10)]
    assert within_budget(examples, 85) == examples[:2]
    assert within_budget(examples, 5) == examples[:1]  # at least one


def test_replay_asks_only_until_its_budget_is_filled_and_a_later_run_goes_on_from_the_cached_answers(home, tmp_path,
                                                                                                     monkeypatch):
    import torch

    from tuneforge.core import replies

    calls = []

    def stand_in(model, tokenizer, conversations, max_new_tokens):
        calls.append(len(conversations))
        return [Reply(f"Answer to {c[0]['content']}", True) for c in conversations]

    monkeypatch.setattr(replies, "generate_replies", stand_in)
    model, folder = torch.nn.Linear(2, 2), tmp_path / "base"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    conversations = [[{"role": "user", "content": f"question {i}"}] for i in range(40)]

    def ask(enough=None):
        return replies.cached_base_replies(model, None, folder, conversations, 32, enough)

    few = ask(enough=lambda so_far: len(so_far) >= 5)
    assert len(few) == replies.GENERATION_BATCH and calls == [replies.GENERATION_BATCH]  # one batch, not all 40
    more = ask(enough=lambda so_far: len(so_far) >= 20)
    assert more[:len(few)] == few and len(more) == 2 * replies.GENERATION_BATCH
    assert calls == [replies.GENERATION_BATCH] * 2  # the first batch came from the cache
    everything = ask()
    assert [r.text for r in everything] == [f"Answer to question {i}" for i in range(40)]
    assert calls == [replies.GENERATION_BATCH] * 2 + [40 - 2 * replies.GENERATION_BATCH]
    assert ask() == everything and len(calls) == 3  # all cached now


@pytest.mark.parametrize(("method", "examples", "answers", "replay", "kl"), [
    ("lora", 32, True, REPLAY_RATIO, REPLAY_KL),  # a small set of answers: replay, held by the KL term to the base
    ("qlora", 999, True, REPLAY_RATIO, REPLAY_KL),
    ("full", 32, True, REPLAY_RATIO, 0),           # no adapter to switch off: the replayed answers train as answers
    ("lora", 1000, True, 0, 0),                    # a large dataset carries its own variety
    ("lora", 32, False, 0, 0),                     # documents: continued pre-training, no answers to keep
    ("dpo", 32, True, 0, 0),                       # preference pairs keep the model near its base by their own loss
])
def test_replay_is_on_for_small_sets_of_answers_trained_by_sft(method, examples, answers, replay, kl):
    config = RunConfig(model="default", data="x.jsonl", method=method)
    settled = settle_replay(config, DataFacts([64] * examples, train_examples=examples, answers=answers))
    assert (settled.replay, settled.replay_kl) == (replay, kl)


CPU = Hardware(cuda=False, gpu_name=None, vram_total_gb=0, vram_free_gb=0, bf16=False, ram_total_gb=16,
               ram_available_gb=16, disk_free_gb=100)


def test_a_small_set_of_answers_trains_until_recalled_where_replay_holds_it_to_the_base():
    facts = DataFacts([64] * 24, train_examples=24)
    held = settle_run(RunConfig(model="default", data="x.jsonl"), CPU, facts, None).config
    assert (held.replay, held.replay_kl, held.stop_when_recalled, held.epochs) == (REPLAY_RATIO, REPLAY_KL, True, SMALL_DATA_MAX_EPOCHS)
    plain = settle_run(RunConfig(model="default", data="x.jsonl", method="full"), CPU, facts, None).config
    assert (plain.replay, plain.replay_kl, plain.stop_when_recalled) == (REPLAY_RATIO, 0, False)  # recall alone forgets
    asked = settle_run(RunConfig(model="default", data="x.jsonl", stop_when_recalled=False), CPU, facts, None).config
    assert (asked.stop_when_recalled, asked.epochs) == (False, DEFAULT_EPOCHS)
    # A base model given its family's template has no chat behaviour to replay (its answers do not end), and must
    # learn to end its answers: it trains until recalled without replay.
    base = settle_run(RunConfig(model="default", data="x.jsonl"), CPU, replace(facts, chat_model=False), None).config
    assert (base.replay, base.replay_kl, base.stop_when_recalled) == (0, 0, True)


def test_replay_as_set_is_kept_and_refused_where_it_cannot_apply():
    facts = DataFacts([64] * 32, train_examples=32)
    assert settle_replay(RunConfig(model="default", data="x.jsonl", replay=0), facts).replay == 0
    assert settle_replay(RunConfig(model="default", data="x.jsonl", replay=2.5), facts).replay == 2.5
    assert settle_replay(RunConfig(model="default", data="x.jsonl"), DataFacts([64])).replay is None  # data not read yet
    with pytest.raises(ConfigError, match="replay"):
        RunConfig.from_dict({"model": "default", "data": "x.jsonl", "method": "dpo", "replay": 1})


@pytest.mark.slow
def test_a_run_replays_the_bases_own_answers_and_reports_the_everyday_answers_it_kept(home, tiny_config, monkeypatch):
    # A tiny random model never ends a turn, so a stand-in answers for it: every reply ends, and each remembers
    # whether the adapter was already on the model that gave it (replay and the first probe must ask the base).
    from tuneforge.core import replies
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.general_answers import RESULT_FILE, general_questions
    from tuneforge.core.runs import RunDir
    from tuneforge.core.train import train_run

    asked = []  # (whether the adapter was on, how many conversations) per call

    def stand_in(model, tokenizer, conversations, max_new_tokens):
        adapted = hasattr(model, "peft_config")
        asked.append((adapted, len(conversations)))
        # The base knows every everyday answer; the tuned model forgets the first one.
        return [Reply("I do not know." if adapted and i == 0 else f"Hello! {_expected(c)}", True)
                for i, c in enumerate(conversations)]

    monkeypatch.setattr(replies, "generate_replies", stand_in)
    lines = []
    run = create_run(tiny_config(max_steps=2, replay=1, forgetting_probe=True), home / "replayed")
    result = train_run(run, echo=lines.append)

    # The base answers the probe, then the replay prompts, a batch at a time only until they fill the budget; the
    # tuned model answers the probe.
    probe, *replay_batches, after = asked
    assert probe == (False, len(general_questions())) and after == (True, len(general_questions()))
    assert not any(adapted for adapted, _ in replay_batches)
    assert replay_batches and all(count == replies.GENERATION_BATCH for _, count in replay_batches)
    assert sum(count for _, count in replay_batches) < len(replay_prompts())
    replay_line = next(line for line in lines if line.startswith("replay: ") and "train beside" in line)
    figures = re.fullmatch(r"replay: (\d+) of the base's own answers \((\d+) tokens, of (\d+) that ended their turn\) "
                           r"train beside the 8 examples \((\d+) tokens\)", replay_line)
    assert figures, replay_line
    chosen, tokens, answered, data_tokens = map(int, figures.groups())
    assert chosen == result.replay_examples > 0
    assert tokens <= data_tokens and answered > chosen  # replay 1: no more tokens than the data, from a larger pool
    assert (result.general_known, result.general_kept) == (len(general_questions()), len(general_questions()) - 1)
    kept = read_answers(RunDir(run.path).path / RESULT_FILE)
    assert [lost.question for lost in kept.lost] == [general_questions()[0].question]
    assert any(line.startswith("forgetting probe: kept") for line in lines)


def _expected(conversation) -> str:
    """A right answer to an everyday question (its first expected word); other prompts get a greeting."""
    by_question = {q.question: q.expect[0] for q in general_questions()}
    return by_question.get(conversation[0]["content"], "")


@pytest.mark.slow
def test_replay_kl_holds_the_replayed_rows_to_the_base(home, tiny_config, monkeypatch):
    from transformers import TrainerCallback

    from tuneforge.core import replies
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.train import train_run

    monkeypatch.setattr(replies, "generate_replies",
                        lambda model, tokenizer, conversations, max_new_tokens: [Reply("Hello there.", True)] * len(conversations))

    class Logs(TrainerCallback):
        def __init__(self):
            self.kl = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.kl += [logs["replay_kl"]] if logs and "replay_kl" in logs else []

    logs = Logs()
    train_run(create_run(tiny_config(max_steps=4, batch_size=8, replay=1, replay_kl=1.0), home / "kl"), echo=None, callbacks=[logs])
    # Batches that hold replayed rows (8 data examples and as many replay tokens) log the term: zero before the
    # adapter has moved (LoRA starts as the identity), positive once it has.
    assert len(logs.kl) >= 2
    assert logs.kl[0] == pytest.approx(0.0, abs=1e-6) and logs.kl[-1] > 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_tuned_model_answers_the_probe_as_merged_and_its_weights_come_back_after(tiny_llama, smol_tokenizer, dtype):
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneforge.core.language_model import load_language_model
    from tuneforge.core.replies import generate_replies
    from tuneforge.core.train.setup import lora_merged

    torch.manual_seed(0)
    base = load_language_model(tiny_llama, dtype=getattr(torch, dtype))
    model = get_peft_model(base, LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False))
    before = {name: weight.clone() for name, weight in model.named_parameters() if "lora" not in name}
    conversation = [[{"role": "user", "content": "What colour is the door?"}]]
    ids = smol_tokenizer.apply_chat_template(conversation[0], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        unmerged_logits = model(**ids).logits.float()
    unmerged = generate_replies(model, smol_tokenizer, conversation, 12)

    with lora_merged(model) as tuned, torch.inference_mode():
        assert tuned.base_model.model.model.layers[0].self_attn.q_proj.merged  # the LoRA is inside the base weights
        merged_logits = tuned(**ids).logits.float()
        merged = generate_replies(tuned, smol_tokenizer, conversation, 12)

    if dtype == "float32":  # the same model: in 16 bits, the merged weights are rounded and the answers may move
        assert (merged_logits - unmerged_logits).abs().max() < 1e-4
        assert merged == unmerged
    else:
        agree = (merged_logits.argmax(-1) == unmerged_logits.argmax(-1)).float().mean()
        assert agree > 0.9  # a random model's flat logits: a near tie flips
    assert not model.base_model.model.model.layers[0].self_attn.q_proj.merged
    for name, weight in model.named_parameters():  # taken out again: the base as it was, to the rounding of its dtype
        if "lora" not in name:
            assert torch.allclose(weight, before[name], rtol=0, atol=1e-6 if dtype == "float32" else 2e-2), name


def test_a_frozen_model_answers_many_questions_at_once_without_a_copy_of_its_head_per_answer(tiny_llama, smol_tokenizer):
    """An adapter's base is frozen; answering 16 questions together in 16 bits must not copy its LM head once per
    answer (batch × hidden × vocabulary: here 16 × 64 × 49,152 bf16 values, 100 MB; 20 GB for an 8B Qwen3)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile

    from tuneforge.core.general_answers import conversations, general_questions
    from tuneforge.core.language_model import load_language_model
    from tuneforge.core.replies import GENERATION_BATCH, generate_replies

    model = get_peft_model(load_language_model(tiny_llama, dtype=torch.bfloat16), LoraConfig(r=8, target_modules="all-linear"))
    assert not model.get_output_embeddings().weight.requires_grad
    head_copy = GENERATION_BATCH * model.config.hidden_size * model.config.vocab_size * 2
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiled:
        replies = generate_replies(model, smol_tokenizer, conversations(general_questions()[:GENERATION_BATCH]), 2)
    assert len(replies) == GENERATION_BATCH
    largest = max(event.cpu_memory_usage for event in profiled.events())
    assert largest < head_copy / 20, f"{largest / 2**20:.0f} MB allocated at once"


def test_replayed_rows_pay_their_answer_loss_and_the_kl_term_in_one_pass_with_the_same_gradients(tiny_llama, smol_tokenizer, tmp_path):
    """The trainer runs the replayed rows apart from the data's: its loss and gradients are those of the answer loss
    over every row of the batch plus the weighted KL term on the replayed rows."""
    import torch
    import torch.nn.functional as F
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from trl import SFTConfig, SFTTrainer

    from tuneforge.core.language_model import load_language_model
    from tuneforge.core.train.replay_kl import ReplayKLTrainer

    torch.manual_seed(0)
    model = get_peft_model(load_language_model(tiny_llama, dtype=torch.float32),
                           LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False))  # already away from the base
    rows = []
    for question, answer in [("Who keeps the lighthouse?", "Mara Tovesk."), ("Hi!", "Hello there, how can I help?"),
                             ("What colour is the door?", "It is teal."), ("Name a fruit.", "An apple.")]:
        text = smol_tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
        prompt = smol_tokenizer(text, add_special_tokens=False)["input_ids"]
        reply = smol_tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        rows.append({"input_ids": prompt + reply, "labels": [-100] * len(prompt) + reply})
    replayed = [tuple(rows[1]["input_ids"]), tuple(rows[3]["input_ids"])]
    trainer = ReplayKLTrainer(model=model, args=SFTConfig(output_dir=str(tmp_path), report_to=[], max_length=None, bf16=False,
                                                                         gradient_checkpointing=False),
                              train_dataset=Dataset.from_list(rows), processing_class=smol_tokenizer, replayed=replayed, weight=0.5)
    batch = trainer.data_collator(rows)
    model.train()
    assert trainer.replayed_rows(batch) == [1, 3]

    def gradients(loss):
        model.zero_grad()
        loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}

    loss = trainer.compute_loss(model, dict(batch))
    got = gradients(loss)
    answers = SFTTrainer.compute_loss(trainer, model, dict(batch))  # every row's answers, as plain SFT trains them
    with torch.no_grad(), model.disable_adapter():
        base = model(input_ids=batch["input_ids"][[1, 3]], attention_mask=batch["attention_mask"][[1, 3]]).logits
    tuned = model(input_ids=batch["input_ids"][[1, 3]], attention_mask=batch["attention_mask"][[1, 3]]).logits
    trained = batch["labels"][[1, 3]][:, 1:] != -100
    kl = F.kl_div(F.log_softmax(tuned[:, :-1][trained], -1), F.log_softmax(base[:, :-1][trained], -1), log_target=True,
                  reduction="batchmean")
    assert kl > 1e-4  # the adapter starts away from the base, so the term has something to pull
    expected = answers + 0.5 * kl
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    want = gradients(expected)
    for name, gradient in want.items():
        torch.testing.assert_close(got[name], gradient, rtol=1e-4, atol=1e-6, msg=name)
