"""SVG snapshots of the main screens at 80×24 on a fixed machine (update with --snapshot-update)."""

from __future__ import annotations

import pytest
from textual.widgets import Button, DataTable, Footer
from textual.widgets._footer import FooterKey

from tuneforge.core.demo import DEMO_DATA, demo_file
from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.screens.evaluate import EvalScreen
from tuneforge.tui.screens.export import ExportScreen
from tuneforge.tui.screens.run import RunScreen
from tuneforge.tui.screens.train import TrainFormScreen

from .pilot import CPU_MACHINE, SIZE


def test_home_screen(snap_compare, home):
    assert snap_compare(TuneforgeApp(hardware=CPU_MACHINE), terminal_size=SIZE)


def test_model_screen(snap_compare, home):
    assert snap_compare(TuneforgeApp(hardware=CPU_MACHINE), terminal_size=SIZE, press=["n"])


def test_train_form(snap_compare, home):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.data = str(demo_file(DEMO_DATA))

    async def open_form(pilot):
        await app.push_screen(TrainFormScreen())

    assert snap_compare(app, terminal_size=SIZE, run_before=open_form)


def _finished(home):
    from .finished_run import finished_run

    return finished_run(home / "runs" / "20261204-073720-default")


@pytest.mark.parametrize("screen", [RunScreen, EvalScreen], ids=["run_view_of_a_finished_run", "eval_table"])
def test_a_finished_runs_screens(snap_compare, home, screen):
    run = _finished(home)
    app = TuneforgeApp(hardware=CPU_MACHINE)

    async def open_screen(pilot):
        await app.push_screen(screen(run))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_screen)


@pytest.mark.parametrize("screen", ["home", "run", "eval", "export"])
async def test_every_control_and_the_quit_key_fit_80_columns(home, screen):
    """The run view's buttons were cut ('… Evaluate  Cha', Shrink gone) and footers lost '^q Quit ? Keys'."""
    run = _finished(home)
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        if screen != "home":
            await app.push_screen({"run": RunScreen, "eval": EvalScreen, "export": ExportScreen}[screen](run))
        await pilot.pause()
        for button in app.screen.query(Button):
            assert button.region.right <= SIZE[0] and button.region.width >= len(str(button.label)), button.id
        footer = app.screen.query_one(Footer)
        keys = [key for key in footer.query(FooterKey) if key.region.width]
        assert all(key.region.right <= SIZE[0] for key in keys)
        assert {"Quit", "Keys"} <= {key.description for key in keys}
        if screen == "home":  # the runs table shows the loss columns, and the model and method
            table = app.screen.query_one("#runs", DataTable)
            assert [str(column.label) for column in table.columns.values()][1:3] == ["model", "method"]
            assert table.virtual_size.width <= table.size.width


async def test_the_run_view_charts_the_learning_rate_and_the_gradient_norm_too(home):
    run = _finished(home)
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunScreen(run))
        await pilot.pause()
        chart = app.screen.query_one("#loss-chart").plt
        for title in ("learning rate", "gradient norm", "loss"):
            await pilot.press("g")
            await pilot.pause()
            assert f"{title}  (g: " in chart.uncolorize(chart.build()).splitlines()[0]
