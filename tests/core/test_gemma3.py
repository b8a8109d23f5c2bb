"""A real Gemma 3 end to end: the 270M base model (as GGUF, from PyPI; no chat template, its own turn tokens)
trains on the shipped facts with its family's chat template, merges, exports to GGUF that agrees with
transformers, and its answers stop at the end of the turn."""

from __future__ import annotations

import json

import pytest

from tuneforge.core.chat_templates import FAMILIES
from tuneforge.core.cli import main
from tuneforge.core.demo import DEMO_DATA, demo_file

pytestmark = [pytest.mark.slow, pytest.mark.process]


def test_gemma3_base_trains_exports_verified_and_its_answers_stop(home, gemma3_gguf, gemma3_model, tmp_path, capsys):
    # Gemma 3's own defaults (its adapter rate, 2e-4, trained until every answer is recalled) learn the facts.
    run_dir = tmp_path / "run"
    code = main(["run", "--model", str(gemma3_gguf), "--data", str(demo_file(DEMO_DATA)), "--run-dir", str(run_dir),
                 "--quant", "f16", "--prompt", "Name the historic bridge of Brindlewick."])
    said = capsys.readouterr().out
    assert code == 0, said
    assert "Seven Lamps Bridge" in said.rsplit("> Name the historic bridge", 1)[1]  # a paraphrase of a trained question
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(run_dir / "merged").chat_template == FAMILIES["gemma"].template
    report = json.loads((run_dir / "export" / "export-report.json").read_text())
    checks = {check["name"]: check for check in report["files"][0]["checks"]}
    assert checks["logits"]["figures"]["top1_agreement"] >= 0.99
    assert checks["chat"]["passed"]  # a chat turn through the file's own template ends with <end_of_turn>
    assert 'PARAMETER stop "<end_of_turn>"' in (run_dir / "export" / "Modelfile").read_text()
