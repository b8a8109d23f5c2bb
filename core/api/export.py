"""Export: a run or a model folder to verified GGUF files; a run's LoRA adapter as a GGUF adapter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import Echo

if TYPE_CHECKING:
    from tuneforge.exporters.export import ExportResult


def export(source: str | Path, quants: list[str] | None = None, out: Path | None = None, echo: Echo = print) -> ExportResult:
    """Export a run or model folder to verified GGUF files (see core/exporting.py)."""
    from ..exporting import export as export_gguf

    return export_gguf(Path(source), quants, out, echo)


def export_adapter(run_dir: str | Path, out: Path | None = None, echo: Echo = print) -> ExportResult:
    """Export a run's LoRA adapter as a GGUF adapter over an f16 GGUF of its base, verified together."""
    from ..exporting import export_adapter as export_gguf_adapter

    return export_gguf_adapter(Path(run_dir), out, echo)
