"""The export report (export-report.json): what each exported file is and how it verified.

One reader for everyone who asks whether a folder holds a verified GGUF: chat, a run's state,
the app's Export screen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORT_FILE = "export-report.json"


def read_report(export_dir: Path) -> dict[str, Any] | None:
    """The folder's export-report.json, or None before the first export (or when it is unreadable)."""
    try:
        return json.loads((Path(export_dir) / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def passed_files(export_dir: Path, models_only: bool = False) -> list[Path]:
    """The files of the report that passed verification and are still there; `models_only` leaves out
    LoRA adapters (which load only over their base)."""
    return [Path(entry["file"]) for entry in _entries(export_dir, models_only)
            if entry.get("passed") and Path(entry["file"]).is_file()]


def _entries(export_dir: Path, models_only: bool) -> list[dict[str, Any]]:
    entries = (read_report(export_dir) or {}).get("files", [])
    return [entry for entry in entries if not models_only or entry.get("gguf_type") != "lora"]


def exported_model(export_dir: Path) -> Path | None:
    """The first model GGUF that passed verification; None when the folder has no exported model,
    an ExportError when it has some and none passed."""
    from tuneforge.core.errors import ExportError

    if not _entries(export_dir, models_only=True):
        return None
    passing = passed_files(export_dir, models_only=True)
    if not passing:
        raise ExportError(f"{Path(export_dir) / REPORT_FILE}: no exported file passed verification", "see the report, then export again")
    return passing[0]
