"""`tuneforge push`: what a run publishes (verified GGUFs only), its model card with the hub's metadata, and an
offline machine's clear refusal."""

from __future__ import annotations

import yaml
from huggingface_hub import ModelCard

from tuneforge.core.api.runs import create_run
from tuneforge.core.cli import main
from tuneforge.core.config import RunConfig
from tuneforge.core.errors import PublishError
from tuneforge.core.merge import merge_run
from tuneforge.core.model_card import card_metadata
from tuneforge.core.runs import new_run
from tuneforge.core.train import train_run

from .exports import write_export


def test_a_dry_run_writes_the_adapter_the_merged_model_the_verified_gguf_and_a_card(home, tiny_config, tiny_llama, tmp_path,
                                                                                     capsys):
    run = create_run(tiny_config(max_steps=3), home / "run")
    train_run(run, echo=None)
    merge_run(run)
    write_export(run, "run-q8_0.gguf", "run-q4_0.gguf")
    out = tmp_path / "to-upload"
    assert main(["push", str(run.path), "--repo", "me/facts", "--what", "adapter,merged,gguf", "--dry-run", str(out)]) == 0
    names = {path.name for path in out.iterdir()}
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "model.safetensors", "config.json",
            "run-q8_0.gguf", "Modelfile"} <= names
    assert "run-q4_0.gguf" not in names  # it failed verification: never published
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["library_name"] == "peft" and {"tuneforge", "lora", "gguf"} <= set(header["tags"])
    assert ModelCard.load(out / "README.md").data.library_name == "peft"  # the hub's own reader takes it
    for section in ("## Data", "## Method and settings", "## Training", "## GGUF verification", "## How to run it"):
        assert section in card
    assert "failed (not published)" in card and "ollama create run" in card and "loss " in card
    assert "in the messages shape" in card and "tokens of which" in card  # the data's figures, not the data
    assert "tiny-llama" in card and str(tiny_llama.parent) not in card  # the model named, the person's folders not
    assert "nothing was uploaded" in capsys.readouterr().out


def test_the_card_names_a_catalog_base_for_the_hubs_model_tree(home, facts_file):
    run = new_run(RunConfig(model="default", data=str(facts_file), method="lora"), home / "runs" / "default")
    metadata = card_metadata(run, ["adapter"])
    assert metadata["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and metadata["license"] == "apache-2.0"


def test_pushing_offline_or_what_a_run_lacks_is_a_clear_error(home, tiny_config, capsys):
    run = create_run(tiny_config(max_steps=2), home / "run")
    assert main(["push", str(run.path), "--repo", "me/facts"]) == 2  # not trained: no adapter
    assert "no trained adapter to push" in capsys.readouterr().err
    train_run(run, echo=None)
    assert main(["push", str(run.path), "--repo", "me/facts", "--what", "adapter"]) == PublishError.exit_code
    said = capsys.readouterr().err  # the tests run with HF_HUB_OFFLINE=1, as a machine without the hub does
    assert "the hub is switched off here" in said and "--dry-run" in said
    assert not list(run.path.glob(".push-*"))  # the staging folder is gone


def test_push_uploads_through_the_hub_library_in_one_commit_and_a_refusal_says_how_to_log_in(home, tiny_config, tmp_path,
                                                                                              monkeypatch, capsys):
    """Against a stand-in for the hub's upload routes (no hub here): the real huggingface_hub creates the repository,
    asks how to send each file and commits them."""
    from huggingface_hub import constants

    from .hub_stand_in import receiving

    run = create_run(tiny_config(max_steps=2), home / "run")
    train_run(run, echo=None)
    write_export(run, "run-q8_0.gguf", "run-q4_0.gguf")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_stand_in")
    with receiving(tmp_path / "hub") as address:
        monkeypatch.setattr(constants, "ENDPOINT", address)
        assert main(["push", str(run.path), "--repo", "me/facts"]) == 0
    uploaded = tmp_path / "hub" / "me" / "facts"
    assert {path.name for path in uploaded.iterdir()} == {"README.md", "adapter_config.json", "adapter_model.safetensors",
                                                          "run-q8_0.gguf", "Modelfile"}
    assert (uploaded / "adapter_model.safetensors").read_bytes() == (run.adapter / "adapter_model.safetensors").read_bytes()
    assert "published 5 files" in capsys.readouterr().out
    with receiving(tmp_path / "hub", refuse=401) as address:
        monkeypatch.setattr(constants, "ENDPOINT", address)
        assert main(["push", str(run.path), "--repo", "me/facts"]) == PublishError.exit_code
    assert "hf auth login" in capsys.readouterr().err
    monkeypatch.setattr(constants, "ENDPOINT", address)  # the stand-in is gone: nothing listens there any more
    assert main(["push", str(run.path), "--repo", "me/facts"]) == PublishError.exit_code  # not a traceback
    assert "the hub cannot be reached" in capsys.readouterr().err
