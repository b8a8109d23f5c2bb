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


@pytest.mark.standard  # imports the built-in model again: seconds
def test_a_gguf_is_parsed_once_however_many_times_its_import_reads_it(tmp_path, monkeypatch, default_model: Path):
    import gguf

    from tuneforge.core.models import default_gguf_path, import_gguf

    parses = []
    original = gguf.GGUFReader

    def counted(path, mode="r"):
        parses.append(Path(path).name)
        return original(path, mode)

    monkeypatch.setattr(gguf, "GGUFReader", counted)
    imported = import_gguf(default_gguf_path(), tmp_path / "imported")
    assert parses == [default_gguf_path().name]  # the config, the tokenizer, the weights and the SentencePiece model share it
    assert gguf.GGUFReader is counted  # put back as it was
    assert (imported / "model.safetensors").read_bytes() == (default_model / "model.safetensors").read_bytes()


def test_two_imports_of_one_gguf_at_once_import_it_once_and_both_get_the_model(tmp_path, monkeypatch, tiny_llama, vocab_gguf):
    # Threads stand in for two tuneforge processes (the app and a command started beside it): the lock is an flock on a
    # file, which holds two opens of it apart within one process as across processes.
    import threading
    import time

    from tuneforge.core import models

    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "home"))
    gguf_file = tmp_path / "model.gguf"
    shutil.copy(vocab_gguf("llama-spm"), gguf_file)
    imports: list[Path] = []

    def slow_import(path: Path, target: Path) -> Path:
        imports.append(target)
        time.sleep(1)  # the other arrives while this one imports
        return copy_model(tiny_llama, target)

    monkeypatch.setattr(models, "import_gguf", slow_import)
    resolved: list[Path] = []
    threads = [threading.Thread(target=lambda: resolved.append(resolve_model(str(gguf_file)).path)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(imports) == 1 and len(resolved) == 2 and resolved[0] == resolved[1] == imports[0]
    assert (imports[0] / "config.json").is_file()


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


def test_pickle_only_weights_are_refused_unless_allowed(tmp_path, tiny_llama):
    import torch
    from safetensors.torch import load_file

    folder = copy_model(tiny_llama, tmp_path / "model")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError) as info:
        resolve_model(str(folder))
    assert "pickle" in info.value.message and "allow_pickle: true" in info.value.hint
    # Asked for explicitly, the pickle loads (transformers reads it with torch's weights-only unpickler).
    from tuneforge.core.hardware import detect
    from tuneforge.core.train.setup import load_base_model

    allowed = resolve_model(str(folder), allow_pickle=True)
    model = load_base_model(allowed, "lora", detect(tmp_path))
    reference = load_file(tiny_llama / "model.safetensors")
    name = next(iter(reference))
    loaded = model.state_dict()[name]
    assert torch.equal(loaded, reference[name].to(loaded.dtype))  # lora loads the base in the compute dtype (bf16 on some CPUs)


def test_weights_cut_short_or_missing_shards_are_named(tmp_path, tiny_llama):
    folder = copy_model(tiny_llama, tmp_path / "model")
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(ModelError) as info:
        resolve_model(str(folder))
    assert f"{weights}: cut short: it holds {size // 2:,} of the {size:,} bytes" in info.value.message
    assert "interrupted" in info.value.hint

    weights.unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (folder / "model-00001-of-00002.safetensors").write_bytes((tiny_llama / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="missing: model-00002-of-00002.safetensors"):
        resolve_model(str(folder))


def test_a_gguf_file_cut_short_is_named_before_anything_loads_it(home, tmp_path):
    from tuneforge.core.cli import main
    from tuneforge.core.models import default_gguf_path

    source = default_gguf_path()
    cut = tmp_path / "SmolLM2.Q4_1.gguf"
    with source.open("rb") as handle:
        cut.write_bytes(handle.read(source.stat().st_size * 2 // 3))
    with pytest.raises(ModelError) as info:
        resolve_model(str(cut))
    assert f"{cut}: cut short: it holds" in info.value.message
    assert not any((home / "models").glob("SmolLM2.Q4_1*")), "a failed import left files in the cache"
    assert main(["chat", str(cut), "--prompt", "Hi"]) == ModelError.exit_code


def test_a_gguf_headers_values_read_directly_are_those_ggufs_own_reader_gives():
    from gguf import GGUFReader

    from tuneforge.core.models import default_gguf_path
    from tuneforge.core.weight_integrity import gguf_architecture, gguf_metadata

    source = default_gguf_path()
    fields = GGUFReader(source).fields
    keys = {"general.architecture", "llama.block_count", "llama.rope.freq_base", "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.add_bos_token"}
    assert gguf_metadata(source, keys) == {key: fields[key].contents() for key in keys}
    assert gguf_architecture(source) == "llama"


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


@pytest.mark.standard  # a 262k vocabulary read twice: 20 s
def test_a_gemma_4_gguf_as_the_base_is_refused_with_the_checkpoint_to_use_instead(home, vocab_gguf, tmp_path):
    # transformers lists Gemma 4 among the GGUF architectures it reads, yet fails on its per-layer settings (the
    # vocabulary file carries Gemma 4's hyperparameters as a model file does).
    gguf_file = tmp_path / "gemma-4-E2B-it.gguf"
    shutil.copy(vocab_gguf("gemma-4"), gguf_file)
    with pytest.raises(ModelError) as info:
        resolve_model(str(gguf_file))
    assert "gemma-4-E2B-it.gguf" in info.value.message
    assert "'gemma4'" in info.value.hint and "Hugging Face checkpoint instead" in info.value.hint
    assert not any((home / "models").glob("gemma-4*")), "a failed import left files in the cache"


def test_a_model_that_will_not_export_is_said_before_training(home, tmp_path, tiny_config, default_model, capsys):
    import json as json_module

    from tests.conftest import build_tiny_model
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.cli import main
    from tuneforge.core.errors import ExportError
    from tuneforge.core.models import known_architecture

    helium = build_tiny_model("helium", default_model, tmp_path / "tiny-helium")
    assert known_architecture(helium) == "HeliumForCausalLM" and known_architecture("qwen3-0.6b") == "Qwen3ForCausalLM"
    said: list[str] = []
    run = create_run(tiny_config(model=str(helium)), tmp_path / "run", echo=said.append)
    assert said == [f"warning: {helium}: llama.cpp's GGUF converter does not know the 'HeliumForCausalLM' architecture: "
                    "training and merging work, `tuneforge export` will refuse"]
    events = [json_module.loads(line) for line in (run.path / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "warning" and "HeliumForCausalLM" in e["error"] for e in events)
    # `tuneforge run` exports at the end: it refuses now, and leaves no run behind.
    with pytest.raises(ExportError, match="HeliumForCausalLM"):
        create_run(tiny_config(model=str(helium)), tmp_path / "refused", must_export=True)
    assert not (tmp_path / "refused").exists()
    assert main(["run", "--model", str(helium), "--data", tiny_config().data, "--run-dir", str(tmp_path / "cli")]) == ExportError.exit_code
    assert "tuneforge train" in capsys.readouterr().err and not (tmp_path / "cli").exists()
    assert main(["models"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("smollm3-3b", "qwen3.5", "gemma-4"))]
    assert listed and all(" yes " in line for line in listed)  # the converter writes today's families


def test_a_download_the_disk_cannot_hold_is_refused_before_it_starts(home, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.file_download import DryRunFileInfo

    from tuneforge.core.errors import ResourceError

    # The hub stands in here (no network in tests): the local cache misses, the dry run lists the files and sizes.
    fetched: list[str] = []

    def snapshot_download(repo_id, *, local_files_only=False, dry_run=False, **_):
        if local_files_only:
            raise FileNotFoundError(repo_id)
        if dry_run:
            return [DryRunFileInfo("abc", 9 * 2**30, "model.safetensors", str(tmp_path / "m"), False, True),
                    DryRunFileInfo("abc", 2_000, "config.json", str(tmp_path / "c"), True, False)]
        fetched.append(repo_id)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    usage = shutil._ntuple_diskusage(10**12, 10**12 - 2**30, 2**30)  # 1 GiB free
    monkeypatch.setattr("tuneforge.core.models.shutil.disk_usage", lambda path: usage)
    with pytest.raises(ResourceError) as info:
        resolve_model("org/large-model")
    assert "needs 9.0 GiB to download; 1.0 GiB free" in info.value.message and "HF_HUB_CACHE" in info.value.hint
    assert fetched == []  # nothing was downloaded


def test_the_catalog_says_which_models_are_downloaded(home, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from tuneforge.core.cli import main

    # A model in the HF cache as the hub library lays it out: refs/main names the snapshot that holds config.json.
    cache = tmp_path / "hf-cache"
    repo = cache / "models--Qwen--Qwen3-0.6B"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line and not line.startswith(("device", "name"))}
    assert lines["qwen3-0.6b"].split()[-2] == "yes" and lines["qwen3-1.7b"].split()[-2] == "-"


def test_a_hub_download_reports_its_progress_and_lands_in_the_cache(home, tiny_llama, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from tests.core.hub_stand_in import serving
    from tuneforge.core.models import is_downloaded

    monkeypatch.setattr("tuneforge.core.models.DOWNLOAD_REPORT_SECONDS", 0.0)  # every write, not once a second
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    reports: list[tuple[int, int]] = []
    with serving(tiny_llama) as address:
        monkeypatch.setattr(constants, "ENDPOINT", address)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", address + "/{repo_id}/resolve/{revision}/{filename}")
        assert not is_downloaded("org/model")
        resolved = resolve_model("org/model", on_download=lambda done, total: reports.append((done, total)))
    # The real hub library downloaded it (the stand-in serves the files); the person saw it start, grow and end.
    assert resolved.path.is_relative_to(tmp_path / "hf-cache")
    assert (resolved.path / "model.safetensors").read_bytes() == (tiny_llama / "model.safetensors").read_bytes()
    total = sum(path.stat().st_size for path in tiny_llama.iterdir() if path.is_file())
    assert reports[0] == (0, total) and reports[-1] == (total, total)
    assert len(reports) > 2 and [done for done, _ in reports] == sorted(done for done, _ in reports)
    assert is_downloaded("org/model")


def test_models_load_on_the_kernels_installed_here_unless_the_person_asks_for_hub_kernels(tiny_llama, monkeypatch):
    """transformers would fetch layer kernels from the hub and run them as a model loads (on CUDA); tuneforge's
    loaders, for training and for everything else, ask it not to unless USE_HUB_KERNELS says otherwise."""
    from tuneforge.core.hardware import detect
    from tuneforge.core.language_model import load_language_model
    from tuneforge.core.train.setup import load_base_model

    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    assert load_language_model(tiny_llama).use_kernels is False
    assert load_base_model(resolve_model(str(tiny_llama)), "lora", detect()).use_kernels is False
    monkeypatch.setenv("USE_HUB_KERNELS", "1")
    assert load_language_model(tiny_llama).use_kernels is True  # the person's choice, as transformers reads it
