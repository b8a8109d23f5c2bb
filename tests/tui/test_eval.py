"""The Evaluate step: a trained run's questions answered by every model with progress, the scores per
model, the answers compared blind (unnamed until marked) and the mark saved in the report."""

from __future__ import annotations

import json

from textual.widgets import DataTable

from tuneforge.core.runs import RunDir
from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.screens.evaluate import EvalScreen
from tuneforge.tui.screens.run import RunScreen

from .pilot import CPU_MACHINE, SIZE, text_of, wait_until


async def test_a_run_is_evaluated_and_its_answers_are_marked_blind(home, tiny_config, facts_file, tmp_path):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.train import train_run

    run = create_run(tiny_config(eval_data=str(facts_file), max_steps=2), tmp_path / "run", echo=None)
    train_run(run, echo=None)
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunScreen(RunDir(run.path)))
        await pilot.pause()
        await pilot.press("v")
        await wait_until(pilot, lambda: isinstance(app.screen, EvalScreen), what="the Evaluate step")
        screen = app.screen
        assert "Not evaluated yet" in text_of(app, "#eval-status")
        await pilot.click("#evaluate")
        summary = screen.query_one("#eval-summary", DataTable)
        await wait_until(pilot, lambda: summary.row_count == 2, what="the evaluation")
        assert [str(summary.get_row_at(i)[0]) for i in range(2)] == ["base", "tuned"]  # a random model's GGUF fails verification
        shown = text_of(app, "#eval-question")
        assert "Question 1 of 8" in shown and "Reference: The door of the Quillon lighthouse is teal." in shown
        assert "base" not in shown and "tuned" not in shown  # blind until marked
        await pilot.press("2")
        report = json.loads((run.path / "eval" / "report.json").read_text())
        best = report["marks"]["0"]
        assert best in ("base", "tuned") and report["preferred"][best] == 1
        assert f"2 {best}  ← best" in text_of(app, "#eval-question")  # named once marked
        await pilot.press("right")
        assert "Question 2 of 8" in text_of(app, "#eval-question")
