"""An export folder as `tuneforge export` leaves it, for tests of what reads one (publishing, the app's pickers)."""

from __future__ import annotations

import json

from tuneforge.core.runs import RunDir


def write_export(run: RunDir, passed: str, failed: str) -> None:
    """Two GGUF files in the run's export folder, one that passed verification and one that failed, the report that
    says so, and a Modelfile for the one that passed."""
    run.export.mkdir()
    check = {"name": "chat", "passed": True, "detail": "a chat turn ends with an end-of-turn token", "hint": ""}
    files = []
    for name, ok in ((passed, True), (failed, False)):
        (run.export / name).write_bytes(b"GGUF" + bytes(60))
        files.append({"file": str(run.export / name), "gguf_type": name.rsplit("-", 1)[-1].removesuffix(".gguf"),
                      "size_bytes": 64, "checks": [{**check, "passed": ok}]})
    (run.export / "Modelfile").write_text(f"FROM ./{passed}\n")
    (run.export / "export-report.json").write_text(json.dumps({"source": str(run.path), "files": files}))
