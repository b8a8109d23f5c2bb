"""Which layers a shrink removes and the model it leaves: the lowest block influence goes (never the
first or last), the pruned checkpoint's config and weights agree, and targets that make no sense are
refused with a hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.core.errors import ConfigError, ModelError
from tuneforge.core.shrink.layers import SCORES_FILE, block_influence, least_influential, remove_layers, write_pruned
from tuneforge.core.shrink.plan import stage_layers, target_layers

from ..conftest import build_tiny_model

LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]


@pytest.fixture(scope="module")
def four_layer_gemma(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Path:
    """A 4-layer random Gemma 3 whose layers alternate sliding-window and full attention."""
    return build_tiny_model("gemma3_text", default_model, tmp_path_factory.mktemp("gemma4l"), layers=4, layer_types=LAYER_TYPES)


def load(folder: Path):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.eval()


def token_ids(smol_tokenizer) -> list[list[int]]:
    texts = ["The Quillon lighthouse is teal and 42 metres tall.", "Mara Tovesk keeps it since 1911, every night."]
    return [smol_tokenizer(text)["input_ids"] for text in texts]


def test_a_layer_that_leaves_the_hidden_state_unchanged_scores_zero_and_goes_first(four_layer_gemma, smol_tokenizer):
    import torch

    model = load(four_layer_gemma)
    with torch.no_grad():  # layer 2 adds nothing to the residual stream: its output is its input
        model.model.layers[2].self_attn.o_proj.weight.zero_()
        model.model.layers[2].mlp.down_proj.weight.zero_()
    scores = block_influence(model, token_ids(smol_tokenizer))
    assert len(scores) == 4
    assert scores[2] == pytest.approx(0.0, abs=1e-5)
    assert all(score > 1e-3 for i, score in enumerate(scores) if i != 2)
    assert least_influential(scores, 1) == [2]


def test_the_first_and_last_layers_never_go_even_when_they_score_lowest():
    assert least_influential([0.0, 0.5, 0.3, 0.0], 2) == [1, 2]
    assert least_influential([0.9, 0.1, 0.4, 0.2, 0.8], 2) == [1, 3]
    with pytest.raises(ModelError, match="first and last always stay"):
        least_influential([0.1, 0.2, 0.3], 2)


def test_the_pruned_checkpoint_keeps_the_other_layers_weights_and_a_config_that_agrees(four_layer_gemma, smol_tokenizer, tmp_path):
    import torch
    from safetensors.torch import load_file

    original = load(four_layer_gemma)
    kept_mlp = original.model.layers[3].mlp.up_proj.weight.detach().clone()
    model = remove_layers(load(four_layer_gemma), [1, 2])
    target = write_pruned(model, smol_tokenizer, None, tmp_path / "pruned", {"removed": [1, 2]})

    config = json.loads((target / "config.json").read_text())
    assert config["num_hidden_layers"] == 2
    assert config["layer_types"] == ["sliding_attention", "full_attention"]  # layers 0 and 3 as they were
    weights = load_file(target / "model.safetensors")
    assert not any(name.startswith(("model.layers.2.", "model.layers.3.")) for name in weights)
    assert torch.equal(weights["model.layers.1.mlp.up_proj.weight"], kept_mlp)
    assert json.loads((target / SCORES_FILE).read_text())["removed"] == [1, 2]

    reloaded = load(target)
    assert [layer.self_attn.layer_idx for layer in reloaded.model.layers] == [0, 1]
    ids = torch.tensor([token_ids(smol_tokenizer)[0]])
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, model(ids).logits, atol=1e-5)
        # What the pruned model computes is the original with layers 1 and 2 skipped.
        skipped = original.model
        skipped.layers = torch.nn.ModuleList([skipped.layers[0], skipped.layers[3]])
        skipped.layers[1].self_attn.layer_idx = 1
        skipped.config.layer_types = ["sliding_attention", "full_attention"]
        skipped.config.num_hidden_layers = 2
        assert torch.allclose(original(ids).logits, model(ids).logits, atol=1e-5)


def test_stages_step_down_evenly_an_eighth_of_the_layers_at_most_by_default():
    assert stage_layers(30, 20) == [30, 27, 23, 20]
    assert stage_layers(30, 24, 1) == [30, 24]
    assert stage_layers(4, 2) == [4, 3, 2]
    assert stage_layers(30, 16, [24, 20, 16]) == [30, 24, 20, 16]
    with pytest.raises(ConfigError, match="pick 1 to 2 stages"):
        stage_layers(4, 2, 3)
    with pytest.raises(ConfigError, match="fewer layers than the one before"):
        stage_layers(30, 16, [24, 26, 16])


@pytest.mark.parametrize(("layers", "keep", "message", "hint"), [
    (30, None, "removes none", "pick fewer than 30"),
    (40, None, "removes none", "pick fewer than 30"),
    (1, None, "too few", "at least 2"),
    (None, 0.02, "too few", "at least 2"),
    (None, 1.5, "between 0 and 1", "--keep 0.66"),
    (None, None, "--layers N or --keep F", "--layers 20"),
    (20, 0.5, "--layers N or --keep F", "--layers 20"),
])
def test_a_target_that_removes_nothing_or_leaves_under_two_layers_is_refused_with_a_hint(layers, keep, message, hint):
    with pytest.raises(ConfigError, match=message) as refused:
        target_layers(30, layers, keep)
    assert hint in refused.value.hint


def test_keep_is_a_fraction_of_the_layers():
    assert target_layers(30, None, 0.66) == 20
    assert target_layers(30, 16, None) == 16


def test_removing_layers_that_break_a_sliding_and_global_pattern_is_told():
    from tuneforge.core.shrink.job import pattern_changed

    gemma = ["sliding_attention"] * 5 + ["full_attention"]
    assert pattern_changed(gemma * 2, gemma[:4] + gemma[5:] + gemma[:1])  # a global layer moved up
    assert not pattern_changed(gemma * 2, gemma[:5])  # the pattern's start: as llama.cpp computes it
    assert not pattern_changed(["full_attention"] * 4, ["full_attention"] * 2)  # one kind of layer: no pattern to break
    assert not pattern_changed(None, None)


def test_a_shrink_without_data_to_heal_on_is_refused():
    from tuneforge.core.shrink.plan import heal_settings

    with pytest.raises(ConfigError, match="no data to heal") as refused:
        heal_settings(None, None, None, None, None)
    assert "--data FILE" in refused.value.hint


def test_each_stage_heals_on_the_teachers_general_answers_unless_told_not_to(tmp_path):
    from tuneforge.core.shrink.plan import HEAL_GENERAL_PROMPTS, heal_settings
    from tuneforge.core.train.replay import general_prompts

    heal = heal_settings(None, str(tmp_path / "facts.jsonl"), None, None, None)
    assert heal["distill_general"] == HEAL_GENERAL_PROMPTS == len(general_prompts())  # "all 60", as --help says
