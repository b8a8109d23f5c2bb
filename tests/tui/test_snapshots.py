"""SVG snapshots of the main screens at 80×24 on a fixed machine (update with --snapshot-update)."""

from __future__ import annotations

from tuneforge.core.demo import DEMO_DATA, demo_file
from tuneforge.tui.app import TuneforgeApp
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
