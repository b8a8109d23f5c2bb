"""GGUF export on tiny random models of every supported architecture, with real tokenizers."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
from pathlib import Path

import pytest

from tuneforge.core.api.export import export
from tuneforge.core.errors import ExportError, ResourceError
from tuneforge.exporters.gguf.convert import convert
from tuneforge.exporters.gguf.types import parse_gguf_types

from ..conftest import build_tiny_model

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, default_model, qwen_tokenizer_dir, vocab_tokenizer, gemma3_model) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "llama": build_tiny_model("llama", default_model, root / "llama"),
        "qwen2": build_tiny_model("qwen2", qwen_tokenizer_dir, root / "qwen2"),
        "qwen3": build_tiny_model("qwen3", qwen_tokenizer_dir, root / "qwen3"),
        # Phi-3's fused qkv/gate_up layout; its own tokenizers are SentencePiece (Phi-3.5) or o200k (Phi-4),
        # neither available offline, so it carries SmolLM2's byte-level BPE here.
        # (llama.cpp looks Phi-3's own special tokens up by text for files *named* phi3; SmolLM2's vocabulary
        # lacks them, so this folder's name must not say phi3.)
        "phi3": as_phi4_tokenizer(build_tiny_model("phi3", default_model, root / "tiny-phi")),
        # Llama 2's SentencePiece vocabulary (byte fallback, ▁ prefix) on Mistral's architecture.
        "mistral": build_tiny_model("mistral", vocab_tokenizer("llama-spm"), root / "mistral"),
        # Gemma 3's graph (1 + weight norms, sliding-window layers, q/k norms, head size ≠ hidden/heads) with
        # Gemma 3's own SentencePiece vocabulary (no space put before the text, unlike Llama 2's).
        "gemma3_text": build_tiny_model("gemma3_text", gemma3_model, root / "gemma3"),
        # Gemma 2's: softcapped attention and logits, every other layer in a sliding window.
        "gemma2": build_tiny_model("gemma2", gemma3_model, root / "gemma2"),
    }


def as_phi4_tokenizer(folder: Path) -> Path:
    """Name the folder's byte-level BPE tokenizer's class as Phi-4-mini's checkpoint does (GPT2Tokenizer): llama.cpp's
    converter reads a Phi-3 folder's tokenizer as SentencePiece (tokenizer.model) unless it says so."""
    config_file = folder / "tokenizer_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "tokenizer_class": "GPT2Tokenizer"}))
    return folder


def agreement_with_near_ties(logits_check) -> float:
    """Top-1 agreement counting the positions where the two top tokens are within rounding of each other (f16's
    rounding may order them either way; a 262k vocabulary of a random model has a few)."""
    figures = logits_check.figures
    return figures["top1_agreement"] + figures.get("near_ties", 0) / figures["positions"]


def checks_of(verification) -> dict:
    return {check.name: check for check in verification.checks}


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "phi3", "mistral", "gemma3_text", "gemma2"])
def test_export_matches_the_hf_model(tiny_models, tmp_path, arch):
    result = export(tiny_models[arch], ["f16", "q8_0", "q4_0"], out=tmp_path / "out", echo=None)

    stem = tiny_models[arch].name
    assert sorted(p.name for p in (tmp_path / "out").glob("*.gguf")) == [f"{stem}-{q}.gguf" for q in ("f16", "q4_0", "q8_0")]
    f16, q8, q4 = result.verifications
    for verification in result.verifications:
        checks = checks_of(verification)
        assert checks["loads"].passed, checks["loads"].detail
        assert checks["tokenizer"].passed, checks["tokenizer"].figures
        # Chat-formatted probes with special tokens are included wherever the tokenizer has a chat template.
        assert checks["tokenizer"].figures["probes"] >= (6 if arch not in ("mistral", "gemma3_text", "gemma2") else 3)
    assert agreement_with_near_ties(checks_of(f16)["logits"]) >= 0.99
    assert checks_of(f16)["logits"].figures["max_abs_logit_diff"] < 0.05
    assert checks_of(f16)["logits"].passed
    assert abs(checks_of(f16)["perplexity"].figures["delta"]) < 0.01 * checks_of(f16)["perplexity"].figures["hf"]
    # A random model's flat distributions make top-1 fragile under quantization; perplexity is the steadier figure.
    assert checks_of(q8)["logits"].figures["top1_agreement"] >= 0.7
    assert abs(checks_of(q8)["perplexity"].figures["delta"]) < 0.05 * checks_of(q8)["perplexity"].figures["hf"]
    assert q4.size_bytes < q8.size_bytes < f16.size_bytes
    report = json.loads(result.report.read_text())
    assert [Path(f["file"]).name for f in report["files"]] == [f"{stem}-{q}.gguf" for q in ("f16", "q8_0", "q4_0")]
    assert not list((tmp_path / "out").glob(".*partial")), "a temporary file was left behind"


def test_the_tokenizer_and_template_travel_in_the_file(tiny_models, tmp_path):
    from gguf import GGUFReader

    path = convert(tiny_models["qwen2"], tmp_path / "q.gguf", "f16")
    fields = GGUFReader(path).fields
    assert fields["tokenizer.ggml.pre"].contents() == "qwen2"
    assert "<|im_start|>" in fields["tokenizer.chat_template"].contents()
    tokens = fields["tokenizer.ggml.tokens"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    assert types[tokens.index("<|im_end|>")] == 3  # CONTROL
    assert fields["tokenizer.ggml.eos_token_id"].contents() is not None


def test_unsupported_architecture_is_refused_before_any_work(tmp_path, tiny_models):
    folder = tmp_path / "madeup"
    folder.mkdir()
    config = json.loads((tiny_models["llama"] / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["MadeUpForCausalLM"]}))
    with pytest.raises(ExportError) as info:
        export(folder, ["f16"], out=tmp_path / "out", echo=None)
    assert "converter does not know the 'MadeUpForCausalLM' architecture" in info.value.message
    assert "tuneforge models" in info.value.hint
    assert not (tmp_path / "out").exists()


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Make the kernel refuse writes past `limit` bytes in any file of this process (RLIMIT_FSIZE),
    as a disk that fills up mid-export would; the free space the exporter checks up front still looks ample."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_disk_filling_up_during_export_loses_nothing(tiny_models, tmp_path, capsys):
    from tuneforge.core.cli import main

    out = tmp_path / "out"
    convert(tiny_models["llama"], out / "llama-q8_0.gguf", "q8_0")  # an earlier export the person keeps
    (out / "export-report.json").write_text('{"files": []}')
    earlier = {path.name: path.read_bytes() for path in out.iterdir()}
    f16_size = sum(f.stat().st_size for f in tiny_models["llama"].glob("*.safetensors")) // 2  # fp32 weights → f16

    with file_size_limit(f16_size // 2):
        code = main(["export", str(tiny_models["llama"]), "--quant", "f16,q8_0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == ResourceError.exit_code
    # The file being converted, or the verification's reference written meanwhile: whichever the disk refuses first.
    assert f"error: the disk ran out of space while writing {out}" in err
    assert "was not replaced" in err and "Traceback" not in err
    # Everything from before is untouched, and no half-written file is left.
    assert {path.name: path.read_bytes() for path in out.iterdir()} == earlier

    with file_size_limit(f16_size // 2):  # the same through a write that replaces an existing file
        with pytest.raises(ResourceError):
            convert(tiny_models["llama"], out / "llama-q8_0.gguf", "f32")
    assert (out / "llama-q8_0.gguf").read_bytes() == earlier["llama-q8_0.gguf"]


def test_too_little_disk_is_refused_up_front(tiny_models, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1024))
    with pytest.raises(ResourceError, match="MiB free"):
        convert(tiny_models["llama"], tmp_path / "model.gguf", "f16")
    assert list(tmp_path.iterdir()) == []


def test_modelfile_has_template_stops_and_default_system_prompt(tiny_models, tmp_path):
    result = export(tiny_models["llama"], ["f16"], out=tmp_path / "out", echo=None)
    if result.modelfile is None:  # a random model may not stop within the chat check's limit
        from transformers import AutoTokenizer

        from tuneforge.exporters.ollama import write_modelfile

        modelfile = write_modelfile(tmp_path / "out" / "llama-f16.gguf", AutoTokenizer.from_pretrained(tiny_models["llama"]))
    else:
        modelfile = result.modelfile
    text = modelfile.read_text()
    assert text.startswith("FROM ./llama-f16.gguf\n")
    assert "<|im_start|>{{ .Role }}" in text and 'PARAMETER stop "<|im_end|>"' in text
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in text


def test_a_gemma_modelfile_speaks_gemmas_turns(tiny_models, tmp_path):
    from transformers import AutoTokenizer

    from tuneforge.core.chat_templates import apply_chat_template_setting
    from tuneforge.exporters.ollama import write_modelfile

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gemma3_text"])
    apply_chat_template_setting(tokenizer, "gemma")  # what a Gemma 3 base model trains with
    (tmp_path / "gemma-f16.gguf").touch()
    text = write_modelfile(tmp_path / "gemma-f16.gguf", tokenizer).read_text()
    assert '<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}user{{ end }}' in text
    assert 'PARAMETER stop "<end_of_turn>"' in text and "SYSTEM" not in text


@pytest.mark.parametrize("template", ["published", "gemma4"])
def test_a_gemma_4_modelfile_opens_the_models_turn_as_its_template_does(vocab_tokenizer, template, tmp_path):
    # Gemma 4's published template ends a generation prompt with an empty thought block when thinking is off;
    # tuneforge's own Gemma 4 format (for a base model without a template) has none.
    from transformers import AutoTokenizer

    from tuneforge.core.chat_templates import apply_chat_template_setting
    from tuneforge.exporters.ollama import write_modelfile

    tokenizer = AutoTokenizer.from_pretrained(vocab_tokenizer("gemma-4"))
    if template == "gemma4":
        apply_chat_template_setting(tokenizer, "gemma4")
    (tmp_path / "gemma4-f16.gguf").touch()
    text = write_modelfile(tmp_path / "gemma4-f16.gguf", tokenizer).read_text()
    assert '<|turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}' in text
    opens_thought = '<|turn>model\n<|channel>thought\n<channel|>"""' in text
    assert opens_thought == (template == "published")
    assert 'PARAMETER stop "<turn|>"' in text and "SYSTEM" not in text


def test_quant_list_is_validated_before_work():
    assert parse_gguf_types("q8_0, Q4_K_M,q8_0") == ["q8_0", "q4_k_m"]
    with pytest.raises(ExportError, match="q9"):
        parse_gguf_types("q8_0,q9")


def test_lora_adapter_gguf_over_the_base_gives_the_merged_logits(home, tiny_config, tmp_path):
    from tuneforge.core.api.export import export_adapter
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.train import train_run
    from tuneforge.exporters.gguf.verify import gguf_logits, open_gguf

    run = create_run(tiny_config(max_steps=8), home / "run")
    train_run(run, echo=None)
    result = export_adapter(run.path, echo=None)

    (verification,) = result.verifications
    checks = checks_of(verification)
    assert Path(verification.file).name == "run-lora.gguf" and verification.gguf_type == "lora"
    assert checks["tokenizer"].passed
    assert checks["logits"].passed and checks["logits"].figures["top1_agreement"] >= 0.99, checks["logits"].figures
    # The adapter really changes the base: without it, llama.cpp's logits differ.
    base_gguf = next(p for p in run.export.glob("*-f16.gguf"))
    with open_gguf(base_gguf) as plain, open_gguf(base_gguf, lora_path=Path(verification.file)) as adapted:
        ids = [1, 2, 3, 4, 5, 6, 7, 8]
        assert abs(gguf_logits(plain, ids) - gguf_logits(adapted, ids)).max() > 1e-2


def test_f32_is_lossless_and_bf16_close(tiny_models, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Checkpoints on the hub are bf16; a bf16 GGUF of one keeps every weight exactly.
    source = tmp_path / "qwen2-bf16"
    AutoModelForCausalLM.from_pretrained(tiny_models["qwen2"], dtype=torch.bfloat16).save_pretrained(source)
    AutoTokenizer.from_pretrained(tiny_models["qwen2"]).save_pretrained(source)
    bf16, f32 = export(source, ["bf16", "f32"], out=tmp_path / "out", echo=None).verifications

    assert checks_of(f32)["logits"].passed and checks_of(f32)["logits"].figures["top1_agreement"] >= 0.99
    # llama.cpp computes bf16 dot products at bf16 precision: near-ties of a random model can flip.
    assert checks_of(bf16)["logits"].figures["top1_agreement"] >= 0.9
    perplexity = checks_of(bf16)["perplexity"].figures
    assert abs(perplexity["delta"]) < 0.02 * perplexity["hf"]
    assert f32.size_bytes > 1.5 * bf16.size_bytes  # both carry the same ~6 MB of vocabulary metadata


def test_a_file_that_computes_something_else_fails_the_logits_check(tiny_models, tmp_path):
    """Near-ties forgive f16 rounding, not a wrong model: a file whose first layer's attention output is
    scaled by 1.1 (an error the size of a mis-scaled tensor in a converter) is caught."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.exporters.gguf.reference import Reference, write_reference
    from tuneforge.exporters.gguf.verify import verify_gguf

    (f16,) = export(tiny_models["llama"], ["f16"], out=tmp_path / "out", echo=None).verifications
    assert checks_of(f16)["logits"].passed
    other = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32)
    with torch.no_grad():
        other.model.layers[0].self_attn.o_proj.weight.mul_(1.1)
    texts = ["The river runs past the old mill and into the lake.", "Seven people met at noon to plan the harvest."]
    reference = Reference.load(write_reference(other, AutoTokenizer.from_pretrained(tiny_models["llama"]), texts, tmp_path / "ref"))
    logits = checks_of(verify_gguf(Path(f16.file), "f16", reference))["logits"]
    assert not logits.passed, logits.detail
