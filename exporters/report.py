"""The export report (export-report.json): what each exported file is and how it verified.

One definition and one reader for everyone who asks whether a folder holds a verified GGUF:
chat, a run's state, `tuneforge runs`, the app's Export screen. Export writes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_FILE = "export-report.json"


@dataclass
class Check:
    """One verification check: whether it passed, the figures behind it, and (failed) what to do."""

    name: str
    passed: bool
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)
    hint: str = ""


@dataclass
class Verification:
    """All checks of one GGUF file."""

    file: str
    gguf_type: str
    size_bytes: int
    checks: list[Check]
    completed: bool = True
    """False when the verification never finished (llama.cpp crashed): the file is neither good nor bad."""

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verification:
        """The inverse of to_dict (as a verification child prints it)."""
        return cls(data["file"], data["gguf_type"], data["size_bytes"], [Check(**check) for check in data["checks"]],
                   data.get("completed", True))


@dataclass
class ExportReport:
    """export-report.json: every file exported into a folder, the model it came from, and its Ollama Modelfile."""

    source: str
    files: list[Verification]
    modelfile: str | None = None
    ollama_command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "files": [v.to_dict() for v in self.files],
                "modelfile": self.modelfile, "ollama_command": self.ollama_command}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportReport:
        """The report in a parsed export-report.json."""
        return cls(data.get("source", ""), [Verification.from_dict(entry) for entry in data.get("files", [])],
                   data.get("modelfile"), data.get("ollama_command"))


def read_report(export_dir: Path) -> ExportReport | None:
    """The folder's export-report.json, or None before the first export (or when it is unreadable)."""
    try:
        return ExportReport.from_dict(json.loads((Path(export_dir) / REPORT_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


NOT_MODELS = ("lora", "mmproj")
"""Report types that are not models of their own: a LoRA adapter loads over its base, a vision projector beside its text model."""


def passed_files(export_dir: Path, models_only: bool = False) -> list[Path]:
    """The files of the report that passed verification and are still there; `models_only` leaves out
    LoRA adapters and vision projectors (NOT_MODELS)."""
    return [Path(entry.file) for entry in _entries(export_dir, models_only) if entry.passed and Path(entry.file).is_file()]


def _entries(export_dir: Path, models_only: bool) -> list[Verification]:
    report = read_report(export_dir)
    entries = report.files if report else []
    return [entry for entry in entries if not models_only or entry.gguf_type not in NOT_MODELS]


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
