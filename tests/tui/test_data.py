"""Data: problems listed as FILE:LINE, stats with a length histogram, the example with its trained span."""

from __future__ import annotations

import json

from textual.widgets import Input

from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.screens.data import DataScreen

from .pilot import CPU_MACHINE, SIZE, text_of


async def check(app, pilot, path) -> None:
    app.screen.query_one("#data-path", Input).value = str(path)
    await pilot.click("#check")
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_every_problem_is_listed_with_file_and_line(home, tiny_llama, tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    bad.write_text("\n".join([good, "{broken json", json.dumps({"messages": [{"role": "user", "content": "no answer"}]})]) + "\n")
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model = str(tiny_llama)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(DataScreen())
        await check(app, pilot, bad)
        problems = text_of(app, "#problems")
        assert "bad.jsonl:2" in problems and "bad.jsonl:3" in problems
        assert "2 problem(s)" in text_of(app, "#data-status")
        assert app.screen.query_one("#next").disabled


async def test_a_good_file_shows_stats_histogram_and_what_is_trained(home, tiny_llama, facts_file):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model = str(tiny_llama)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(DataScreen())
        await check(app, pilot, facts_file)
        assert "no problems" in text_of(app, "#data-status")
        stats = text_of(app, "#stats")
        assert "messages" in stats and "8 → 8 train, 0 eval" in stats and "truncated   0 (0%)" in stats
        assert "examples by token length" in text_of(app, "#histogram")
        preview = app.screen.query_one("#preview").render()
        trained = "".join(preview.plain[span.start:span.end] for span in preview.spans if "green" in str(span.style))
        assert "Quillon lighthouse is teal.<|im_end|>" in trained  # the answer and its end of turn
        assert "?" not in trained and "user" not in trained  # the question is context only
        assert not app.screen.query_one("#next").disabled
        assert app.session.data == str(facts_file) and app.session.report is not None


async def test_field_validation_stops_the_check(home, facts_file):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(DataScreen())
        app.screen.query_one("#max-length", Input).value = "8"
        await check(app, pilot, facts_file)
        assert "max-length" in text_of(app, "#data-status") and app.session.report is None


async def test_a_core_error_is_a_modal_with_its_hint_not_a_traceback(home, facts_file):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model = "qwen2.5-0.5b"  # not in the local cache, and tests run with the hub offline
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(DataScreen())
        await check(app, pilot, facts_file)
        await pilot.pause()
        assert type(app.screen).__name__ == "ErrorModal"
        assert "not in the local cache" in text_of(app, "#error-message")
        assert text_of(app, "#error-hint").endswith("or use the built-in model (the first row of the Model step)")
        await pilot.press("enter")
        assert isinstance(app.screen, DataScreen) and "failed" in text_of(app, "#data-status")


async def test_the_file_picker_fills_in_the_path_and_checks_it(home, tiny_llama, facts_file):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model = str(tiny_llama)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(DataScreen())
        await pilot.press("ctrl+o")
        assert type(app.screen).__name__ == "PathPicker"
        field = app.screen.query_one("#picker-path", Input)
        field.focus()
        field.value = str(facts_file.parent / "missing.jsonl")
        await pilot.press("enter")
        assert "no such file" in text_of(app, "#picker-error")
        field.value = str(facts_file)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)
        assert app.screen.query_one("#data-path", Input).value == str(facts_file)
        assert "no problems" in text_of(app, "#data-status")


async def test_a_hub_dataset_id_is_accepted_and_an_untrained_turn_shows_as_context(home, tiny_llama, monkeypatch):
    """The datasets library's loader stands in for the hub (tests/core/test_sources.py covers the offline refusal)."""
    import datasets

    record = {"messages": [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Lyon.", "weight": 0},
                           {"role": "user", "content": "Really?"}, {"role": "assistant", "content": "Paris, sorry."}]}
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config=None: datasets.DatasetDict(
        {"train": datasets.Dataset.from_list([record] * 4)}))
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model = str(tiny_llama)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(DataScreen())
        await check(app, pilot, "someone/corrections")
        assert "someone/corrections: messages data, no problems" in text_of(app, "#data-status")
        preview = app.screen.query_one("#preview").render()
        trained = "".join(preview.plain[span.start:span.end] for span in preview.spans if "green" in str(span.style))
        assert "Paris, sorry." in trained and "Lyon." not in trained and "Lyon." in preview.plain
        assert app.session.data == "someone/corrections"  # an id, not a path under the working folder
