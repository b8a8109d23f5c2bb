"""The whole guided flow in the app: built-in model → sample data → training child → verified GGUF → chat reply.

It uses SmolLM2-135M, the smallest real model: a random tiny model cannot pass the export's
chat check (a reply must end with end-of-turn), and the point is a GGUF that verifies.
"""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input, SelectionList, Static

from tuneforge.tui.app import TuneforgeApp

from ..conftest import share_replies
from .pilot import CPU_MACHINE, SIZE, text_of, wait_until

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


async def test_from_model_pick_to_a_verified_gguf_and_a_chat_reply(home, default_model, shared_replies):
    share_replies(home, shared_replies)  # the base's everyday answers, once a session (the demo's run asks them too)
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")  # Home → Model
        await pilot.press("enter")  # the built-in default is the first row
        await pilot.press("ctrl+s")  # Data: the shipped sample dataset, checked at once
        await wait_until(pilot, lambda: not app.screen.query_one("#next").disabled, 120, "the data check")
        await pilot.press("ctrl+n")  # → Train form
        app.screen.query_one("#field-max_steps", Input).value = "2"
        app.screen.query_one("#field-batch_size", Input).value = "4"
        app.screen.query_one("#field-replay", Input).value = "0"  # replay's first run answers 138 prompts (its own tests)
        await pilot.press("ctrl+s")  # Start
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunScreen", 60, "the live view")
        run = app.screen.run
        await wait_until(pilot, lambda: run.state() == "trained", 300, "training to finish")
        await pilot.pause(1)
        assert app.screen.history.last_step.step == 2 and not app.screen.query_one("#export").disabled

        await pilot.press("e")  # → Export, q8_0 selected by default
        assert list(app.screen.query_one("#quants", SelectionList).selected) == ["q8_0"]
        await pilot.press("x")
        assert "Exporting q8_0" in text_of(app, "#report")  # not "No export yet" while it works
        await wait_until(pilot, lambda: "PASS" in text_of(app, "#report") or "FAIL" in text_of(app, "#report"), 600,
                         "export and verification")
        report = text_of(app, "#report")
        assert "PASS" in report and "✓ chat" in report and "ollama create" in report
        assert json.loads((run.export / "export-report.json").read_text())["files"][0]["passed"]
        assert "done: 1 of 1 file passed verification" in app.screen.query_one("#export-log").written

        await pilot.press("c")  # → Chat with the verified GGUF, the base beside it
        await wait_until(pilot, lambda: "tuned" in app.screen.models, 120, "the GGUF to load")
        assert ".gguf" in app.screen.models["tuned"].label
        # The base answers beside it at the same quantization: its own q8_0 file, converted and verified once.
        await wait_until(pilot, lambda: "base" in app.screen.models, 180, "the base's q8_0 GGUF")
        assert app.screen.models["base"].label.endswith("-q8_0.gguf")
        app.screen.query_one("#prompt", Input).value = "What is the capital of France?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.screen.query_one("#base").messages) == 2, 180, "both answers")
        replies = [str(w.render()) for w in app.screen.query("#tuned .turn.assistant").results(Static)]
        assert replies and "Paris" in replies[-1]
