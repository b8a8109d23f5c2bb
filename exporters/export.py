"""`tuneforge export`: a run or model folder → verified GGUF files, a report, and an Ollama Modelfile."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.core.atomic import atomic_write_text, disk_full_as_error
from tuneforge.core.errors import ExportError
from tuneforge.core.events import Exported
from tuneforge.core.merge import require_mergeable
from tuneforge.core.runs import RunDir

from .gguf import convert as gguf_convert
from .gguf.quantize import quantize
from .gguf.reference import write_reference
from .gguf.types import DEFAULT_TYPES
from .gguf.verify import verify_in_child
from .ollama import ollama_command, write_modelfile
from .report import REPORT_FILE, ExportReport, Verification, read_report

EVAL_TEXTS = 16
"""How many eval examples the perplexity check reads (enough for a stable figure, quick on a CPU)."""
UNVERIFIED_SUFFIX = ".unverified"
"""A GGUF is written as NAME.gguf.unverified and renamed to NAME.gguf once its verification finished
(the report says whether it passed); one whose verification never finished (llama.cpp crashed
on it, the export was interrupted) keeps the name that says so."""


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


def export(source: Path, quants: list[str] | None = None, out: Path | None = None,
           echo: Callable[[str], None] | None = print) -> ExportResult:
    """Export a run (merging it first if needed) or a HF model folder to verified GGUF files."""
    source, out = Path(source).expanduser().resolve(), _absolute(out)
    quants = list(quants or DEFAULT_TYPES)
    model_dir, out_dir, eval_texts_from, name = _locate(source, out)
    gguf_convert.require_convertible(gguf_convert.read_model_config(model_dir if model_dir.exists() else _base_of(source)), str(source))
    if not model_dir.exists():
        from tuneforge.core.merge import merge_run

        _say(echo, "merging the adapter first …")
        merge_run(RunDir(source))
    hf_model, tokenizer = _load_reference(model_dir)
    eval_texts = _eval_texts(eval_texts_from, tokenizer)
    files = _write_files(model_dir, out_dir, name, quants, echo)
    with _reference_of(hf_model, tokenizer, eval_texts, out_dir) as reference:
        del hf_model  # every file is compared with the reference on disk: the model's memory is free for llama.cpp
        verifications = []
        for qtype, staged in files:
            final = verified_name(staged)
            _say(echo, f"verifying {final.name} …")
            verification = verify_in_child(staged, qtype, reference)
            verifications.append(_settle(verification, {staged: final}))
    passing = [Path(v.file) for v in verifications if v.passed]
    modelfile = _modelfile(passing[0], tokenizer) if passing else None
    return _finish(source, out_dir, verifications, modelfile, name, [Path(v.file) for v in verifications])


def unverified_name(target: Path) -> Path:
    """Where a GGUF that will be `target` once verified is written first."""
    return target.with_name(target.name + UNVERIFIED_SUFFIX)


def verified_name(staged: Path) -> Path:
    """The name a staged GGUF takes once its verification finished."""
    return staged.with_name(staged.name.removesuffix(UNVERIFIED_SUFFIX))


@contextlib.contextmanager
def _reference_of(hf_model: Any, tokenizer: Any, eval_texts: list[str], out_dir: Path) -> Any:
    """What the HF model computes on the verification texts, in a folder removed when the export is done."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".verify-reference-") as folder:
        with disk_full_as_error(Path(folder)):
            reference = write_reference(hf_model, tokenizer, eval_texts, Path(folder))
        del hf_model  # this frame must not keep the model alive while llama.cpp verifies
        yield reference


def _settle(verification: Verification, renames: dict[Path, Path]) -> Verification:
    """Give the staged files of a finished verification their final names (it then names the final file)."""
    if verification.completed:
        for staged, final in renames.items():
            if staged != final:
                os.replace(staged, final)
        verification.file = str(renames.get(Path(verification.file), verification.file))
    return verification


def export_adapter(run_path: Path, out: Path | None = None, echo: Callable[[str], None] | None = print) -> ExportResult:
    """Export a run's LoRA adapter as a GGUF adapter plus an f16 GGUF of its base, verified together
    against the merged model (llama.cpp applies the adapter at load time)."""
    from .gguf.adapter import convert_adapter

    run_path, out = Path(run_path).expanduser().resolve(), _absolute(out)
    run = RunDir(run_path)
    _locate(run_path, out)  # the same checks as a full export: a run with a trained adapter
    if not (run.adapter / "adapter_config.json").is_file():  # full and freeze train the weights themselves
        raise ExportError(f"{run_path}: method {run.load_config().method} trains the model's own weights; it has no adapter",
                          f"export its weights: tuneforge export {run_path}")
    base_dir = _base_of(run_path)
    base_config = gguf_convert.read_model_config(base_dir)
    out_dir = out or run.export
    adapter_final = out_dir / f"{run.name}-lora.gguf"
    adapter_file = convert_adapter(run.adapter, base_dir, base_config, unverified_name(adapter_final))
    base_final = out_dir / f"{base_dir.name}-f16.gguf"
    base_file = base_final  # converted by an earlier adapter export of this run
    if not base_final.is_file():
        _say(echo, f"converting the base model to {base_final.name} …")
        base_file = gguf_convert.convert(base_dir, unverified_name(base_final), "f16", name=base_dir.name)
    merged, tokenizer = _merged_in_memory(run)
    with _reference_of(merged, tokenizer, _eval_texts(run_path, tokenizer), out_dir) as reference:
        del merged
        _say(echo, f"verifying {adapter_final.name} over {base_final.name} …")
        verification = verify_in_child(base_file, "lora", reference, lora_path=adapter_file)
    verification = _settle(verification, {adapter_file: adapter_final, base_file: base_final})
    modelfile = _modelfile(base_final, tokenizer, adapter=adapter_final) if verification.passed else None
    files = [adapter_final, base_final] if verification.completed else [adapter_file, base_file]
    return _finish(run_path, out_dir, [verification], modelfile, run.name, files)


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
    report = out_dir / REPORT_FILE
    command = ollama_command(modelfile, re.sub(r"[^a-z0-9._-]+", "-", name.lower())) if modelfile else None
    # The report covers every file in the folder: a later export replaces its own files' entries only.
    previous = read_report(out_dir)
    entries = {entry.file: entry for entry in (previous.files if previous else []) if Path(entry.file).is_file()}
    entries.update({v.file: v for v in verifications})
    written = ExportReport(str(source), list(entries.values()), str(modelfile) if modelfile else None, command)
    atomic_write_text(report, json.dumps(written.to_dict(), indent=2))
    if (source / "config.yaml").is_file():
        failures = [f"{Path(v.file).name}: {next(c.detail for c in v.checks if not c.passed)}" for v in verifications if not v.passed]
        RunDir(source).record(Exported(files=[str(p) for p in files], passed=not failures,
                                       error="; ".join(failures) if failures else None))
    return ExportResult(out_dir, verifications, report, modelfile, command)


def _absolute(out: Path | None) -> Path | None:
    """The output folder as an absolute path: the report names files that chat opens from anywhere."""
    return Path(out).expanduser().resolve() if out is not None else None


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
    """Up to EVAL_TEXTS held-out examples of the run (its training examples when it held none out, as a small set
    of answers does), rendered as the model saw them in training."""
    if run_path is None:
        return []
    from tuneforge.core.data.prepare import run_split

    trained, held_out = run_split(RunDir(run_path).load_config(), check=False)
    examples = held_out or trained
    texts = [tokenizer.apply_chat_template(e.messages, tokenize=False) if e.messages else e.text for e in examples]
    return [t for t in texts if t][:EVAL_TEXTS]


def _write_files(model_dir: Path, out_dir: Path, name: str, quants: list[str], echo: Callable[[str], None] | None) -> list[tuple[str, Path]]:
    """Convert (and quantize) every requested type under its unverified name; the f16 intermediate
    that quantization starts from is kept only if asked for."""
    written: dict[str, Path] = {}
    f16_file = unverified_name(out_dir / f"{name}-f16.gguf")

    def f16_source() -> Path:  # converted once per export: a staged file left by an earlier one may be stale
        if "f16" not in written:
            _say(echo, f"converting to {verified_name(f16_file).name} …")
            written["f16"] = gguf_convert.convert(model_dir, f16_file, "f16", name=name)
        return f16_file

    try:
        for qtype in quants:
            target = unverified_name(out_dir / f"{name}-{qtype}.gguf")
            if qtype == "f16":
                f16_source()
            elif qtype in gguf_convert.OUTTYPES:
                _say(echo, f"converting to {verified_name(target).name} …")
                gguf_convert.convert(model_dir, target, qtype, name=name)
            else:
                source = f16_source()
                _say(echo, f"quantizing to {verified_name(target).name} …")
                quantize(source, target, qtype)
            written[qtype] = target
    finally:
        if "f16" not in quants:
            f16_file.unlink(missing_ok=True)
    return [(qtype, written[qtype]) for qtype in quants]
