"""Model resolution: GGUF import, folder checks, pickles and remote code refused, offline hub errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tuneforge.core.errors import ModelError
from tuneforge.core.models import resolve_model


def test_default_model_is_imported_into_a_plain_checkpoint(home, default_model: Path):
    resolved = resolve_model("default")
    assert resolved.path.resolve() == default_model.resolve() and resolved.arch == "llama"
    config = json.loads((default_model / "config.json").read_text())
    assert "quantization_config" not in config  # a plain checkpoint, not a GGUF-backed one
    assert (default_model / "model.safetensors").is_file() and (default_model / "chat_template.jinja").is_file()
    assert resolved.lora_targets[0] == "q_proj"


def test_a_local_folder_resolves(tiny_llama: Path):
    resolved = resolve_model(str(tiny_llama))
    assert resolved.path == tiny_llama and resolved.spec is None and resolved.arch == "llama"


def copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_folder_without_config_is_refused(tmp_path, tiny_llama):
    folder = copy_model(tiny_llama, tmp_path / "model")
    (folder / "config.json").unlink()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(folder))


def test_pickle_only_weights_are_refused(tmp_path, tiny_llama):
    folder = copy_model(tiny_llama, tmp_path / "model")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelError) as info:
        resolve_model(str(folder))
    assert "pickle" in info.value.message and "safetensors" in info.value.hint


def test_corrupt_config_is_named(tmp_path, tiny_llama):
    folder = copy_model(tiny_llama, tmp_path / "model")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json: not valid JSON"):
        resolve_model(str(folder))


def test_remote_code_is_refused_unless_allowed(tmp_path, tiny_llama):
    folder = copy_model(tiny_llama, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my_custom_lm", auto_map={"AutoModelForCausalLM": "modeling_custom.MyLM"})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError) as info:
        resolve_model(str(folder))
    assert "trust_remote_code" in info.value.hint
    assert resolve_model(str(folder), trust_remote_code=True).arch == "my_custom_lm"


def test_missing_paths_and_offline_hub_ids_are_explained(home, tmp_path):
    with pytest.raises(ModelError, match="no such GGUF file"):
        resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelError, match="no such model folder"):
        resolve_model("./not/a/folder")
    with pytest.raises(ModelError) as info:
        resolve_model("smollm2-360m")
    assert "HuggingFaceTB/SmolLM2-360M-Instruct" in info.value.message
    assert "hf download" in info.value.hint and "--model default" in info.value.hint


def test_a_file_that_is_not_a_gguf_model_is_refused(home, tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelError, match="broken.gguf"):
        resolve_model(str(bogus))
    assert not any((home / "models").glob("broken*")), "a failed import left files in the cache"
