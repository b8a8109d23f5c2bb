"""Shrink in the app: from a finished run's view, the form plans a shrink (a target that makes no sense is
refused with its hint), the live view follows the real shrink child through its stages to the end,
and the smallest stage opens as a run; a stopped shrink offers Resume with what happened."""

from __future__ import annotations

import os
import signal

import pytest
from textual.widgets import Input

from tuneforge.core.api import runs as runs_api
from tuneforge.core.api.runs import create_run
from tuneforge.core.events import Stopped
from tuneforge.core.runs import RunDir
from tuneforge.core.shrink.job import create_shrink, plan_shrink
from tuneforge.core.train import train_run
from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.errors import ErrorModal
from tuneforge.tui.screens.run import RunScreen
from tuneforge.tui.screens.shrink import ShrinkScreen
from tuneforge.tui.screens.shrink_form import ShrinkForm

from ..conftest import build_tiny_model
from .pilot import CPU_MACHINE, SIZE, text_of, wait_until

pytestmark = pytest.mark.process  # the shrink runs in a child process


@pytest.fixture()
def merged_run(home, tiny_config, default_model, tmp_path) -> RunDir:
    """A finished, merged run of a 4-layer random Llama."""
    model = build_tiny_model("llama", default_model, tmp_path / "llama4", layers=4)
    run = create_run(tiny_config(model=str(model), epochs=2), home / "runs" / "source")
    train_run(run, echo=None)
    runs_api.merge(run.path)
    return RunDir(run.path)


async def test_a_run_is_shrunk_from_its_view_and_the_stages_are_followed_to_the_end(merged_run, home):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(RunScreen(merged_run))
            await pilot.pause()
            await pilot.press("k")
            await wait_until(pilot, lambda: isinstance(app.screen, ShrinkForm), what="the shrink form")
            app.screen.query_one("#shrink-layers", Input).value = "4"  # removes nothing
            await pilot.click("#shrink-start")
            await wait_until(pilot, lambda: isinstance(app.screen, ErrorModal), what="the refusal")
            assert "removes none" in text_of(app, "#error-message") and "pick fewer than 4" in text_of(app, "#error-hint")
            await pilot.press("escape")

            await pilot.press("k")
            await wait_until(pilot, lambda: isinstance(app.screen, ShrinkForm), what="the shrink form")
            app.screen.query_one("#shrink-layers", Input).value = "3"
            await pilot.click("#shrink-start")
            await wait_until(pilot, lambda: isinstance(app.screen, ShrinkScreen), what="the shrink view")
            shrink = app.screen.shrink
            assert shrink.plan().layers == [4, 3]
            await wait_until(pilot, lambda: shrink.state() == "finished", timeout=300, what="the shrink")
            await wait_until(pilot, lambda: "finished" in text_of(app, "#shrink-title"), what="the view to follow")
            assert "1 of 1 stages finished" in text_of(app, "#figures")
            assert "stage" in text_of(app, "#stages") and "3" in text_of(app, "#stages")
            assert app.screen.query_one("#stop").disabled and app.screen.query_one("#resume").disabled
            await pilot.press("o")
            await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the smallest stage's run")
            assert app.screen.run.path == shrink.stage(1).path
    finally:
        for folder in home.joinpath("runs").iterdir():
            if (folder / "shrink.json").is_file():
                from tuneforge.core.shrink.job import ShrinkDir

                pid = ShrinkDir(folder).pid()
                if pid:
                    os.kill(pid, signal.SIGKILL)


async def test_a_stopped_shrink_says_so_and_offers_resume(merged_run, home):
    shrink = create_shrink(plan_shrink(str(merged_run.path), layers=2), home / "runs" / "shrink")
    shrink.record(Stopped(error="training stopped at step 3; checkpoint saved", hint="continue with `tuneforge shrink --resume …`"))
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(ShrinkScreen(shrink))
        await pilot.pause()
        assert "stopped" in text_of(app, "#shrink-title") and "4 → 3 → 2 layers" in text_of(app, "#shrink-title")
        figures = text_of(app, "#figures")
        assert "0 of 2 stages finished" in figures and "checkpoint saved" in figures and "Resume (r) in the shrink's view" in figures
        assert not app.screen.query_one("#resume").disabled
        assert app.screen.query_one("#stop").disabled and app.screen.query_one("#open-stage").disabled
