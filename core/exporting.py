"""`tuneforge export`'s run-level part: a run (merged first if needed) or a HF model folder → verified GGUF files.

Which folder is converted, which texts verify it (the run's own data), merging a run that is not
merged yet, and the run's `exported` event live here; exporters/export.py does the format work
(convert, quantize, verify, report, Modelfile) on folders and texts it is handed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ExportError
from .events import Exported
from .merge import require_mergeable
from .runs import RunDir

if TYPE_CHECKING:
    from tuneforge.exporters.export import ExportResult

EVAL_TEXTS = 16
"""How many of a run's examples the verification reads (enough for a stable figure, quick on a CPU)."""


def export(source: Path, quants: list[str] | None = None, out: Path | None = None,
           echo: Callable[[str], None] | None = print) -> ExportResult:
    """Export a run (merging it first if needed) or a HF model folder to verified GGUF files."""
    from tuneforge.exporters.export import export_folder, has_vision_tower, read_model_config, require_convertible

    source, out = Path(source).expanduser().resolve(), _absolute(out)
    model_dir, out_dir, run, name = _locate(source, out)
    base = _base_of(run) if run is not None else model_dir
    require_convertible(read_model_config(model_dir if model_dir.exists() else base), str(source))
    if run is not None and not model_dir.exists():
        from .merge import merge_run

        if echo:
            echo("merging the adapter first …")
        merge_run(run)
    # A multimodal base's vision tower is never trained: its projector comes from the base, beside the fine-tuned text model.
    vision_from = base if has_vision_tower(base) else None
    result = export_folder(model_dir, out_dir, name, quants, lambda tokenizer: _eval_texts(run, tokenizer), echo, source,
                           vision_from)
    _record(run, result)
    return result


def export_adapter(run_path: Path, out: Path | None = None, echo: Callable[[str], None] | None = print) -> ExportResult:
    """Export a run's LoRA adapter as a GGUF adapter plus an f16 GGUF of its base, verified together
    against the merged model (llama.cpp applies the adapter at load time)."""
    from tuneforge.exporters.export import export_adapter_files

    run_path, out = Path(run_path).expanduser().resolve(), _absolute(out)
    _model_dir, out_dir, run, _name = _locate(run_path, out)  # the same checks as a full export: a run with a trained adapter
    if run is None:
        raise ExportError(f"{run_path}: not a run directory", "pass RUN_DIR (with config.yaml): a model folder has no adapter")
    if not (run.adapter / "adapter_config.json").is_file():  # full and freeze train the weights themselves
        raise ExportError(f"{run_path}: method {run.load_config().method} trains the model's own weights; it has no adapter",
                          f"export its weights: tuneforge export {run_path}")
    base = _base_of(run)
    merged, tokenizer = _merged_in_memory(run, base)
    result = export_adapter_files(run.adapter, base, merged, tokenizer, _eval_texts(run, tokenizer), out_dir, run.name,
                                  echo, run_path)
    _record(run, result)
    return result


def _record(run: RunDir | None, result: ExportResult) -> None:
    """The run's `exported` event: the files, and why any failed."""
    if run is None:
        return
    failures = [f"{Path(v.file).name}: {next(c.detail for c in v.checks if not c.passed)}" for v in result.verifications if not v.passed]
    run.record(Exported(files=[str(p) for p in result.files], passed=result.passed, error="; ".join(failures) if failures else None))


def _locate(source: Path, out: Path | None) -> tuple[Path, Path, RunDir | None, str]:
    """(model folder, output folder, the run or None, file name stem) for a run or model folder."""
    if (source / "config.yaml").is_file():
        run = RunDir(source)
        if not require_mergeable(run) and not (run.adapter / "adapter_config.json").is_file():
            raise ExportError(f"{source}: this run has no trained adapter yet", f"train it first: tuneforge train {source}")
        return run.merged, (out or run.export), run, run.name
    if (source / "config.json").is_file():
        return source, (out or source.with_name(source.name + "-gguf")), None, source.name
    raise ExportError(f"{source}: neither a run directory nor a model folder", "pass RUN_DIR (with config.yaml) or MODEL_DIR (with config.json)")


def _base_of(run: RunDir) -> Path:
    """The base model folder of a run (to check its architecture before merging, its vision tower, adapter exports)."""
    from .models import resolve_base

    return resolve_base(run.load_config()).path


def _eval_texts(run: RunDir | None, tokenizer: Any) -> list[str]:
    """Up to EVAL_TEXTS held-out examples of the run (its training examples when it held none out, as a small set
    of answers does), rendered as the model saw them in training; none for a model folder."""
    if run is None:
        return []
    from .data.prepare import run_split

    trained, held_out = run_split(run.load_config(), check=False)
    examples = held_out or trained
    texts = [tokenizer.apply_chat_template(e.messages, tokenize=False) if e.messages else e.text for e in examples]
    return [t for t in texts if t][:EVAL_TEXTS]


def _merged_in_memory(run: RunDir, base: Path) -> tuple[Any, Any]:
    """The run's merged model in fp32 (from merged/ when present, else merged in memory over `base`) and its tokenizer."""
    from tuneforge.exporters.export import load_reference

    if (run.merged / "config.json").is_file():
        return load_reference(run.merged)
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from .language_model import load_language_model

    model = load_language_model(base, dtype=torch.float32)
    return PeftModel.from_pretrained(model, run.adapter).merge_and_unload().eval(), AutoTokenizer.from_pretrained(run.adapter)


def _absolute(out: Path | None) -> Path | None:
    """The output folder as an absolute path: the report names files that chat opens from anywhere."""
    return Path(out).expanduser().resolve() if out is not None else None
