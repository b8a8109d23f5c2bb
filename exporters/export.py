"""A HF model folder → verified GGUF files, a report, and an Ollama Modelfile (the format work of `tuneforge export`;
which folder and which verification texts, and a run's merge and events, are core/exporting.py's)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.core.atomic import atomic_write_text, disk_full_as_error
from tuneforge.core.errors import ExportError

from .gguf import convert as gguf_convert
from .gguf.convert import has_vision_tower, read_model_config, require_convertible
from .gguf.quantize import QUANT_TYPES, quantize
from .gguf.reference import write_reference
from .gguf.types import DEFAULT_TYPES
from .gguf.verify import verify_in_child
from .gguf.vision import PROJECTOR_TYPE
from .ollama import ollama_command, write_modelfile
from .report import REPORT_FILE, ExportReport, Verification, read_report

__all__ = ["ExportResult", "export_adapter_files", "export_folder", "has_vision_tower", "load_reference", "read_model_config",
           "require_convertible"]

SMALL_MODEL_BYTES = 2 * 2**30
"""Under this much weight on disk the reference is fp32 (exact) and is computed while the converter runs."""
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
    files: list[Path]
    """Every GGUF written, under its final name where its verification finished."""

    @property
    def passed(self) -> bool:
        """Whether every model file verified (a vision projector that failed is reported, and the text model stands)."""
        return all(v.passed for v in self.verifications if v.gguf_type != PROJECTOR_TYPE)


def export_folder(model_dir: Path, out_dir: Path, name: str, quants: list[str] | None,
                  eval_texts: Callable[[Any], list[str]], echo: Callable[[str], None] | None, source: Path,
                  vision_from: Path | None = None) -> ExportResult:
    """Convert `model_dir` to each GGUF type in `quants`, verify each file against the HF model on the texts
    `eval_texts(tokenizer)` gives, and write the report and a Modelfile; `source` is what the report names.
    With `vision_from` (a multimodal checkpoint), its vision projector is written too and checked over the text model."""
    quants = list(quants or DEFAULT_TYPES)
    with ThreadPoolExecutor(max_workers=1) as pool:
        converting = pool.submit(_write_files, model_dir, out_dir, name, quants, echo)
        if not _small(model_dir):
            # A small model's reference is computed while the converter's child writes the files (their memory fits
            # together); a large one's waits for the files, so the two never hold the weights at the same time.
            converting.result()
        with contextlib.ExitStack() as stack:
            with _one_core_fewer_while(converting):
                _say(echo, "computing the trained model's reference answers to check each file against …")
                hf_model, tokenizer = load_reference(model_dir)
                reference = stack.enter_context(_reference_of(hf_model, tokenizer, eval_texts(tokenizer), out_dir))
            del hf_model  # every file is compared with the reference on disk: the model's memory is free for llama.cpp
            files = converting.result()
            verifications = []
            for qtype, staged in files:
                _say(echo, f"verifying {verified_name(staged).name} …")
                verification = verify_in_child(staged, qtype, reference)
                verifications.append(_settle(verification, {staged: verified_name(staged)}))
    passing = [Path(v.file) for v in verifications if v.passed]
    loading = [Path(v.file) for v in verifications if v.completed and any(c.name == "loads" and c.passed for c in v.checks)]
    if vision_from is not None and loading:
        verifications.append(_vision_projector(vision_from, out_dir, name, loading[0], echo))
    modelfile = _modelfile(passing[0], tokenizer) if passing else None
    return _finish(source, out_dir, verifications, modelfile, name, [Path(v.file) for v in verifications], echo)


def export_adapter_files(adapter_dir: Path, base_dir: Path, merged: Any, tokenizer: Any, texts: list[str], out_dir: Path,
                         name: str, echo: Callable[[str], None] | None, source: Path) -> ExportResult:
    """Write `adapter_dir` as a GGUF adapter and `base_dir` as an f16 GGUF, and verify the two together against
    `merged` (the merged model in memory) on `texts`."""
    from .gguf.adapter import convert_adapter

    base_config = read_model_config(base_dir)
    adapter_final = out_dir / f"{name}-lora.gguf"
    adapter_file = convert_adapter(adapter_dir, base_dir, base_config, unverified_name(adapter_final))
    base_final = out_dir / f"{base_dir.name}-f16.gguf"
    base_file = base_final  # converted by an earlier adapter export of this run
    if not base_final.is_file():
        _say(echo, f"converting the base model to {base_final.name} …")
        base_file = gguf_convert.convert(base_dir, unverified_name(base_final), "f16", name=base_dir.name)
    with _reference_of(merged, tokenizer, texts, out_dir) as reference:
        del merged
        _say(echo, f"verifying {adapter_final.name} over {base_final.name} …")
        verification = verify_in_child(base_file, "lora", reference, lora_path=adapter_file)
    verification = _settle(verification, {adapter_file: adapter_final, base_file: base_final})
    modelfile = _modelfile(base_final, tokenizer, adapter=adapter_final) if verification.passed else None
    files = [adapter_final, base_final] if verification.completed else [adapter_file, base_file]
    return _finish(source, out_dir, [verification], modelfile, name, files, echo)


def _vision_projector(checkpoint: Path, out_dir: Path, name: str, text_model: Path,
                      echo: Callable[[str], None] | None) -> Verification:
    """The vision projector of `checkpoint`, written beside the text model and checked over it."""
    from .gguf.convert import convert_projector
    from .gguf.vision import verify_projector_in_child

    final = out_dir / f"mmproj-{name}-f16.gguf"
    _say(echo, f"converting the vision projector to {final.name} …")
    staged = convert_projector(checkpoint, unverified_name(final))
    _say(echo, f"verifying {final.name} over {text_model.name} …")
    return _settle(verify_projector_in_child(staged, text_model), {staged: final})


def unverified_name(target: Path) -> Path:
    """Where a GGUF that will be `target` once verified is written first."""
    return target.with_name(target.name + UNVERIFIED_SUFFIX)


def verified_name(staged: Path) -> Path:
    """The name a staged GGUF takes once its verification finished."""
    return staged.with_name(staged.name.removesuffix(UNVERIFIED_SUFFIX))


def _small(model_dir: Path) -> bool:
    """Whether a checkpoint's weights are small enough (under 2 GiB) for its fp32 reference and the converter at once."""
    return sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) < SMALL_MODEL_BYTES


def load_reference(model_dir: Path) -> tuple[Any, Any]:
    """The HF model (eval mode) and tokenizer every GGUF is compared with.

    fp32 for small models (exact reference); past ~2 GB of weights bf16, so that a 7B/8B
    reference and the GGUF under test fit together in a 32 GB workstation's RAM.
    """
    import torch
    from transformers import AutoTokenizer

    from tuneforge.core.language_model import load_language_model

    dtype = torch.float32 if _small(model_dir) else torch.bfloat16
    model = load_language_model(model_dir, dtype=dtype).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


@contextlib.contextmanager
def _one_core_fewer_while(converting: Future) -> Iterator[None]:
    """torch on one thread fewer while the converter's child still runs: on a machine of few cores the two otherwise
    contend for every core, and the converter, the longer of the two, ends later (2 cores, the built-in model: the
    export's wall time 8.1 → 7.4 s)."""
    import torch

    threads = torch.get_num_threads()
    if not converting.done() and threads > 1:
        torch.set_num_threads(threads - 1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _reference_of(hf_model: Any, tokenizer: Any, eval_texts: list[str], out_dir: Path) -> Any:
    """What the HF model computes on the verification texts, in a folder removed when the export is done."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".verify-reference-") as folder:
        with disk_full_as_error(out_dir):  # a temporary folder: the message names the export folder
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


def _modelfile(gguf_file: Path, tokenizer: Any, adapter: Path | None = None) -> Path | None:
    """An Ollama Modelfile, or None when the chat format has no Ollama template here (the GGUF still works)."""
    try:
        return write_modelfile(gguf_file, tokenizer, adapter)
    except ExportError:
        return None


def _finish(source: Path, out_dir: Path, verifications: list[Verification], modelfile: Path | None,
            name: str, files: list[Path], echo: Callable[[str], None] | None) -> ExportResult:
    """Write export-report.json, say how many files passed, and build the result."""
    report = out_dir / REPORT_FILE
    command = ollama_command(modelfile, re.sub(r"[^a-z0-9._-]+", "-", name.lower())) if modelfile else None
    # The report covers every file in the folder: a later export replaces its own files' entries only.
    previous = read_report(out_dir)
    entries = {entry.file: entry for entry in (previous.files if previous else []) if Path(entry.file).is_file()}
    entries.update({v.file: v for v in verifications})
    written = ExportReport(str(source), list(entries.values()), str(modelfile) if modelfile else None, command)
    atomic_write_text(report, json.dumps(written.to_dict(), indent=2))
    passed = sum(v.passed for v in verifications)
    _say(echo, f"done: {passed} of {len(verifications)} file{'s' if len(verifications) != 1 else ''} passed verification")
    return ExportResult(out_dir, verifications, report, modelfile, command, files)


def _say(echo: Callable[[str], None] | None, text: str) -> None:
    if echo:
        echo(text)


def _write_files(model_dir: Path, out_dir: Path, name: str, quants: list[str], echo: Callable[[str], None] | None) -> list[tuple[str, Path]]:
    """Convert (and quantize) every requested type under its unverified name; the f16 intermediate
    that quantization starts from is kept only if asked for. q8_0 comes from the converter, unless the f16 file is
    written anyway: then libllama quantizes that in a second where the converter would read the weights again
    (and rebuild a large vocabulary: 15 s for a tiny model with Gemma 4's)."""
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
            elif qtype in gguf_convert.OUTTYPES and not (qtype in QUANT_TYPES and "f16" in quants):
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
