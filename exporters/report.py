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


def passed_files(export_dir: Path) -> list[Path]:
    """The files of the report that passed verification and are still there."""
    report = read_report(export_dir) or {}
    return [Path(entry["file"]) for entry in report.get("files", []) if entry.get("passed") and Path(entry["file"]).is_file()]
