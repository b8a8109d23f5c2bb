"""The catalog holds the models people ask for, with the facts the UI shows."""

import pytest

from tuneforge.core import catalog
from tuneforge.core.errors import ModelError

REQUIRED = [
    "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b",
    "qwen3-4b-2507", "smollm3-3b", "gemma-3-270m",
    "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "mistral-7b", "gemma-3-1b", "phi-3.5-mini",
    "smollm2-135m", "smollm2-360m", "smollm2-1.7b", "qwen3.5-4b", "qwen3.5-9b", "gpt-oss-20b", "gemma-4-e2b", "gemma-4-e4b",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_catalog_entry_is_complete(name):
    spec = catalog.get_spec(name)
    assert spec.params_b > 0 and spec.context >= 2048
    assert spec.arch and spec.license and spec.lora_targets
    assert "/" in spec.hub_id


@pytest.mark.parametrize("spec", catalog.all_models(), ids=lambda spec: spec.name)
def test_every_shape_accounts_for_its_published_parameters(spec):
    """A mistyped dimension shows: the shape's layers and embeddings, and the towers beside them, add up to the published
    count (Qwen3.5's cards round to whole billions, hence the 6 %)."""
    from tuneforge.core.memory import decoder_parameters, input_embedding_parameters, untied_head

    head = spec.shape.vocab * spec.shape.hidden if untied_head(spec.params_b * 1e9, spec.shape) else 0
    counted = decoder_parameters(spec.shape) + input_embedding_parameters(spec.shape) + head + spec.shape.towers_b * 1e9
    assert counted / 1e9 == pytest.approx(spec.params_b, rel=0.06)


def test_lookup_by_hub_id_and_default():
    assert catalog.find_spec("Qwen/Qwen2.5-1.5B-Instruct").name == "qwen2.5-1.5b"
    assert catalog.find_spec("default").name == "smollm2-135m"


def test_unknown_name_lists_the_catalog():
    with pytest.raises(ModelError) as info:
        catalog.get_spec("gpt-17")
    assert "qwen2.5-0.5b" in info.value.hint


def test_gated_models_are_flagged():
    assert catalog.get_spec("llama-3.2-1b").gated
    assert not catalog.get_spec("qwen2.5-0.5b").gated
