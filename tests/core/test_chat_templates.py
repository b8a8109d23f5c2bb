"""A base model without a chat template gets its family's, written with the special tokens its vocabulary
has, so every answer ends with one end-of-turn token that is trained (the model learns to stop); a
template whose turns end with no such token blocks training with the fix; the trained template is the
one the merged model carries. Real vocabularies: Llama 3's (llama-bpe), Phi-3's, Llama 2's, SmolLM2's."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tuneforge.core.chat_templates import CHOICES, FAMILIES, end_of_turn_ids
from tuneforge.core.config import ChatTemplate, RunConfig
from tuneforge.core.data.formats import load_examples
from tuneforge.core.data.prepare import DataRecipe, prepare
from tuneforge.core.errors import DataError

from ..conftest import build_tiny_model


def without_template(folder: Path, extra_special: tuple[str, ...] = ()):
    """The tokenizer in `folder` as a base model ships it: no chat template (and, for a test, extra special tokens)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = None
    if extra_special:
        tokenizer.add_special_tokens({"additional_special_tokens": list(extra_special)})
    return tokenizer


def trained_end(tokenizer, facts_file: Path, setting: str = "auto") -> tuple[str, str]:
    """The first training example as rendered, and the last token its labels train that is not whitespace
    (a SentencePiece vocabulary may write the newline after an end-of-turn token as "▁" and "<0x0A>")."""
    prepared = prepare(load_examples(facts_file), tokenizer, DataRecipe(256, 0.0, chat_template=setting))
    example = prepared.train[0]
    trained = [label for label in example.labels if label != -100]
    while tokenizer.decode(trained[-1:]).strip() == "":
        trained.pop()
    assert prepared.stats.end_of_turn_trained
    return tokenizer.decode(example.input_ids), tokenizer.convert_ids_to_tokens(trained[-1])


def test_the_config_offers_every_family():
    assert set(typing.get_args(ChatTemplate)) == set(CHOICES)


@pytest.mark.parametrize(("vocab", "extra", "family", "end"), [
    pytest.param("llama-bpe", (), "llama3", "<|eot_id|>", marks=pytest.mark.standard),  # Llama 3.2 base: header tokens, no template
    ("phi-3", (), "phi3", "<|end|>"),
    ("llama-spm", ("<start_of_turn>", "<end_of_turn>"), "gemma", "<end_of_turn>"),  # Gemma's turn tokens
    ("llama-spm", (), "mistral", "</s>"),  # Llama 2: no turn tokens at all; the turn ends with end-of-sequence
    pytest.param("gemma-4", (), "gemma4", "<turn|>", marks=pytest.mark.standard),  # a Gemma 4 base model: <|turn> and <turn|>
])
def test_a_base_model_gets_its_familys_template_and_its_answers_end_with_a_trained_turn_end(vocab_tokenizer, facts_file, vocab, extra,
                                                                                             family, end):
    tokenizer = without_template(vocab_tokenizer(vocab), extra)
    rendered, last = trained_end(tokenizer, facts_file)
    assert tokenizer.chat_template == FAMILIES[family].template
    assert last == end and tokenizer.convert_tokens_to_ids(end) in end_of_turn_ids(tokenizer)
    assert all(marker in rendered for marker in FAMILIES[family].markers)
    if family == "gemma":
        assert "<start_of_turn>model\n" in rendered  # Gemma's assistant role is "model"


def test_smollm2_base_gets_chatml_and_a_model_with_a_template_keeps_its_own(smol_tokenizer, qwen_tokenizer_dir, facts_file):
    smol = AutoTokenizer.from_pretrained(smol_tokenizer.name_or_path)
    smol.chat_template = None
    assert trained_end(smol, facts_file)[1] == "<|im_end|>" and smol.chat_template == FAMILIES["chatml"].template
    qwen = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    own = qwen.chat_template
    trained_end(qwen, facts_file)
    assert qwen.chat_template == own


def test_a_template_that_ends_no_turn_with_a_token_blocks_training_with_the_fix(smol_tokenizer, facts_file):
    smol = AutoTokenizer.from_pretrained(smol_tokenizer.name_or_path)  # SmolLM2 has no Gemma turn tokens
    with pytest.raises(DataError, match="never learn to stop") as refused:
        prepare(load_examples(facts_file), smol, DataRecipe(256, 0.0, chat_template="gemma"))
    assert "chat_template: chatml" in refused.value.hint


@pytest.mark.slow  # trains and merges a model with Llama 3's 128k vocabulary: a minute on 2 cores
def test_the_template_a_run_trained_with_is_the_one_merged(home, vocab_tokenizer, facts_file, tmp_path):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.merge import merge_run
    from tuneforge.core.train import train_run

    folder = build_tiny_model("llama", vocab_tokenizer("llama-bpe"), tmp_path / "llama3-base")
    assert not AutoTokenizer.from_pretrained(folder).chat_template  # as Llama 3.2 base ships
    run = create_run(RunConfig(model=str(folder), data=str(facts_file), eval_split=0, max_steps=2, batch_size=2, lora_r=4,
                               forgetting_probe=False), tmp_path / "run")
    train_run(run, echo=None)
    merged = AutoTokenizer.from_pretrained(merge_run(run))
    assert merged.chat_template == FAMILIES["llama3"].template
    generation = json.loads((run.merged / "generation_config.json").read_text())
    assert merged.convert_tokens_to_ids("<|eot_id|>") in generation["eos_token_id"]  # chat stops at the turn's end


def test_a_mistyped_chat_template_is_named_with_the_choices(home, facts_file, capsys):
    from tuneforge.core.cli import main

    code = main(["data", "check", str(facts_file), "--chat-template", "gemma5"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown chat template 'gemma5'" in err and "gemma4" in err and "Traceback" not in err
