"""Model: search and filters over the catalog, fit badges, a local folder or GGUF, validation messages."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Select

from tuneforge.core.catalog import CATALOG
from tuneforge.tui.app import TuneforgeApp

from .pilot import CPU_MACHINE, SIZE, text_of


def rows(app) -> dict[str, list[str]]:
    table = app.screen.query_one("#catalog", DataTable)
    return {key.value: [str(cell) for cell in table.get_row(key)] for key in table.rows}


async def open_model_screen(pilot):
    await pilot.press("n")
    await pilot.pause()


async def test_search_and_size_filter_narrow_the_catalog(home):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await open_model_screen(pilot)
        assert len(rows(app)) == len(CATALOG) + 1  # the built-in default first
        app.screen.query_one("#search", Input).value = "qwen3"
        await pilot.pause()
        assert set(rows(app)) == {"qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-4b-2507", "qwen3-8b", "qwen3.5-4b", "qwen3.5-9b"}
        app.screen.query_one("#size", Select).value = "large"
        await pilot.pause()
        assert set(rows(app)) == {"qwen3-8b", "qwen3.5-9b"}
        app.screen.query_one("#search", Input).value = "no such model"
        await pilot.pause()
        assert not rows(app) and "No model matches" in text_of(app, "#model-note")


async def test_fit_badges_follow_the_machine_and_notes_say_licence_and_gating(home):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await open_model_screen(pilot)
        table = rows(app)
        assert table["default"][-1] == "✓ fits"
        assert table["qwen2.5-1.5b"][-1] == "~ slow"
        assert table["llama-3.1-8b"][-1] == "✗ too big"
        assert "gated" in table["llama-3.1-8b"][4]
        assert "works offline" in text_of(app, "#model-note")
        app.screen.query_one("#catalog", DataTable).move_cursor(row=list(rows(app)).index("llama-3.2-1b"))
        await pilot.pause()
        assert "Gated" in text_of(app, "#model-note") and "llama3.2" in text_of(app, "#model-note")


async def test_enter_picks_the_highlighted_model(home):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await open_model_screen(pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "DataScreen" and app.session.model == "default"
        await pilot.press("escape")
        assert type(app.screen).__name__ == "ModelScreen"


async def test_down_from_the_search_goes_to_the_list_and_one_enter_picks(home):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await open_model_screen(pilot)
        await pilot.press("slash", *"qwen3-4b", "down", "down")  # into the list, then to its second row
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "DataScreen" and app.session.model == "qwen3-4b-2507"


async def test_a_local_folder_is_checked_before_it_is_used(home, tiny_llama, tmp_path):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await open_model_screen(pilot)
        path = app.screen.query_one("#model-path", Input)
        path.focus()
        path.value = str(tmp_path / "missing")
        await pilot.press("enter")
        assert "no such model folder" in text_of(app, "#path-error")
        (tmp_path / "not-a-model").mkdir()
        path.value = str(tmp_path / "not-a-model")
        await pilot.press("enter")
        assert "no config.json" in text_of(app, "#path-error")
        path.value = str(tiny_llama)
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "DataScreen" and app.session.model == str(tiny_llama)
