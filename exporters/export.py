"""`tuneforge export`: a run or model folder → verified GGUF files, a report, and an Ollama Modelfile."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tuneforge.core.atomic import atomic_write_text
from tuneforge.core.errors import ExportError
from tuneforge.core.merge import require_mergeable
from tuneforge.core.runs import RunDir

from .gguf import convert as gguf_convert
from .gguf.architectures import architecture_for
from .gguf.quantize import QUANT_TYPES, quantize
from .gguf.verify import Verification, verify_gguf
from .ollama import ollama_command, write_modelfile

DEFAULT_QUANTS = ("q8_0", "q4_k_m")
EVAL_TEXTS = 16
"""How many eval examples the perplexity check reads (enough for a stable figure, quick on a CPU)."""


@dataclass
class ExportResult:
    """What an export wrote and how each file verified."""

    out_dir: Path
    verifications: list[Verification]
    report: Path
    modelfile: Path | None
    ollama_command: str | None

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verifications)


def parse_quants(text: str) -> list[str]:
    """`q8_0,q4_k_m` → a validated list (before any work starts)."""
    quants = [q.strip().lower() for q in text.split(",") if q.strip()]
    valid = (*gguf_convert.OUTTYPES, *QUANT_TYPES)
    unknown = [q for q in quants if q not in valid]
    if unknown or not quants:
        raise ExportError(f"unknown GGUF type(s): {', '.join(unknown) or '(none given)'}", f"choose from {', '.join(valid)}")
    return list(dict.fromkeys(quants))


def export(source: Path, quants: list[str] | None = None, out: Path | None = None,
           echo: Callable[[str], None] | None = print) -> ExportResult:
    """Export a run (merging it first if needed) or a HF model folder to verified GGUF files."""
    source = Path(source).expanduser().resolve()
    quants = list(quants or DEFAULT_QUANTS)
    model_dir, out_dir, eval_texts_from, name = _locate(source, out)
    architecture_for(gguf_convert.read_model_config(model_dir if model_dir.exists() else _base_of(source)), str(source))
    if not model_dir.exists():
        from tuneforge.core.merge import merge_run

        _say(echo, "merging the adapter first …")
        merge_run(RunDir(source))
    hf_model, tokenizer = _load_reference(model_dir)
    eval_texts = _eval_texts(eval_texts_from, tokenizer)
    files = _write_files(model_dir, out_dir, name, quants, echo)
    verifications = []
    for qtype, path in files:
        _say(echo, f"verifying {path.name} …")
        verifications.append(verify_gguf(path, qtype, hf_model, tokenizer, eval_texts))
    passing = [Path(v.file) for v in verifications if v.passed]
    modelfile = _modelfile(passing[0], tokenizer) if passing else None
    return _finish(source, out_dir, verifications, modelfile, name, [p for _, p in files])


def export_adapter(run_path: Path, out: Path | None = None, echo: Callable[[str], None] | None = print) -> ExportResult:
    """Export a run's LoRA adapter as a GGUF adapter plus an f16 GGUF of its base, verified together
    against the merged model (llama.cpp applies the adapter at load time)."""
    from .gguf.adapter import convert_adapter

    run_path = Path(run_path).expanduser().resolve()
    run = RunDir(run_path)
    _locate(run_path, out)  # the same checks as a full export: a run with a trained adapter
    if not (run.adapter / "adapter_config.json").is_file():  # full and freeze train the weights themselves
        raise ExportError(f"{run_path}: method {run.load_config().method} trains the model's own weights; it has no adapter",
                          f"export its weights: tuneforge export {run_path}")
    base_dir = _base_of(run_path)
    base_config = gguf_convert.read_model_config(base_dir)
    architecture_for(base_config, str(base_dir))
    out_dir = out or run.export
    adapter_file = convert_adapter(run.adapter, base_config, out_dir / f"{run.name}-lora.gguf")
    base_file = out_dir / f"{base_dir.name}-f16.gguf"
    if not base_file.is_file():
        _say(echo, f"converting the base model to {base_file.name} …")
        gguf_convert.convert(base_dir, base_file, "f16", name=base_dir.name)
    merged, tokenizer = _merged_in_memory(run)
    _say(echo, f"verifying {adapter_file.name} over {base_file.name} …")
    verification = verify_gguf(base_file, "lora", merged, tokenizer, _eval_texts(run_path, tokenizer), lora_path=adapter_file)
    modelfile = _modelfile(base_file, tokenizer, adapter=adapter_file) if verification.passed else None
    return _finish(run_path, out_dir, [verification], modelfile, run.name, [adapter_file, base_file])


def _modelfile(gguf_file: Path, tokenizer: Any, adapter: Path | None = None) -> Path | None:
    """An Ollama Modelfile, or None when the chat format has no Ollama template here (the GGUF still works)."""
    try:
        return write_modelfile(gguf_file, tokenizer, adapter)
    except ExportError:
        return None


def _merged_in_memory(run: RunDir) -> tuple[Any, Any]:
    """The run's merged model in fp32 (from merged/ when present, else merged in memory) and its tokenizer."""
    if (run.merged / "config.json").is_file():
        return _load_reference(run.merged)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(_base_of(run.path), dtype=torch.float32)
    return PeftModel.from_pretrained(base, run.adapter).merge_and_unload().eval(), AutoTokenizer.from_pretrained(run.adapter)


def _finish(source: Path, out_dir: Path, verifications: list[Verification], modelfile: Path | None,
            name: str, files: list[Path]) -> ExportResult:
    """Write export-report.json (and the run's `exported` event) and build the result."""
    report = out_dir / "export-report.json"
    command = ollama_command(modelfile, re.sub(r"[^a-z0-9._-]+", "-", name.lower())) if modelfile else None
    # The report covers every file in the folder: a later export replaces its own files' entries only.
    previous = json.loads(report.read_text(encoding="utf-8")).get("files", []) if report.is_file() else []
    entries = {entry["file"]: entry for entry in previous if Path(entry["file"]).is_file()}
    entries.update({v.file: v.to_dict() for v in verifications})
    atomic_write_text(report, json.dumps({
        "source": str(source), "files": list(entries.values()),
        "modelfile": str(modelfile) if modelfile else None, "ollama_command": command,
    }, indent=2))
    if (source / "config.yaml").is_file():
        RunDir(source).append_event("exported", files=[str(p) for p in files], passed=all(v.passed for v in verifications))
    return ExportResult(out_dir, verifications, report, modelfile, command)


def _say(echo: Callable[[str], None] | None, text: str) -> None:
    if echo:
        echo(text)


def _base_of(run_path: Path) -> Path:
    """The base model folder of a run that is not merged yet (to check its architecture early)."""
    from tuneforge.core.models import resolve_base

    config = RunDir(run_path).load_config()
    return resolve_base(config).path


def _locate(source: Path, out: Path | None) -> tuple[Path, Path, Path | None, str]:
    """(model folder, output folder, run folder for eval texts, file name stem) for a run or model folder."""
    if (source / "config.yaml").is_file():
        run = RunDir(source)
        if not require_mergeable(run) and not (run.adapter / "adapter_config.json").is_file():
            raise ExportError(f"{source}: this run has no trained adapter yet", f"train it first: tuneforge train {source}")
        return run.merged, (out or run.export), source, run.name
    if (source / "config.json").is_file():
        return source, (out or source.with_name(source.name + "-gguf")), None, source.name
    raise ExportError(f"{source}: neither a run directory nor a model folder", "pass RUN_DIR (with config.yaml) or MODEL_DIR (with config.json)")


def _load_reference(model_dir: Path) -> tuple[Any, Any]:
    """The HF model (eval mode) and tokenizer every GGUF is compared with.

    fp32 for small models (exact reference); past ~2 GB of weights bf16, so that a 7B/8B
    reference and the GGUF under test fit together in a 32 GB workstation's RAM.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weight_bytes = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    dtype = torch.float32 if weight_bytes < 2 * 2**30 else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def _eval_texts(run_path: Path | None, tokenizer: Any) -> list[str]:
    """Up to EVAL_TEXTS held-out examples of the run, rendered as the model saw them in training."""
    if run_path is None:
        return []
    from tuneforge.core.data.formats import load_examples
    from tuneforge.core.data.prepare import split_examples

    config = RunDir(run_path).load_config()
    if config.eval_data:
        examples = load_examples(config.eval_data, config.columns).examples
    else:
        _, examples = split_examples(load_examples(config.data, config.columns).examples, config.eval_split, config.seed)
    texts = [tokenizer.apply_chat_template(e.messages, tokenize=False) if e.messages else e.text for e in examples]
    return [t for t in texts if t][:EVAL_TEXTS]


def _write_files(model_dir: Path, out_dir: Path, name: str, quants: list[str], echo: Callable[[str], None] | None) -> list[tuple[str, Path]]:
    """Convert (and quantize) every requested type; the f16 intermediate is kept only if asked for."""
    written = []
    f16_file = out_dir / f"{name}-f16.gguf"
    needs_f16 = any(q in QUANT_TYPES for q in quants)
    try:
        for qtype in quants:
            target = out_dir / f"{name}-{qtype}.gguf"
            if qtype in gguf_convert.OUTTYPES:
                _say(echo, f"converting to {target.name} …")
                gguf_convert.convert(model_dir, target, qtype, name=name)
            else:
                if not f16_file.is_file():
                    _say(echo, f"converting to {f16_file.name} (the source for quantization) …")
                    gguf_convert.convert(model_dir, f16_file, "f16", name=name)
                _say(echo, f"quantizing to {target.name} …")
                quantize(f16_file, target, qtype)
            written.append((qtype, target))
    finally:
        if needs_f16 and "f16" not in quants:
            f16_file.unlink(missing_ok=True)
    return written
