"""Home: the hardware panel, recent runs with their state, keys help, the command palette's actions."""

from __future__ import annotations

from textual.widgets import DataTable

from tuneforge.core.config import RunConfig
from tuneforge.core.events import Exported, Finished, Started, Step
from tuneforge.core.runs import new_run
from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.screens.home import HomeScreen

from .pilot import CPU_MACHINE, SIZE, text_of, wait_until


async def test_home_shows_the_machine_and_invites_a_first_run(home):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        hardware = text_of(app, "#hardware")
        assert "no CUDA" in hardware and "24.0 GB" in hardware and "100 GB free" in hardware
        assert "LoRA" in hardware
        assert app.screen.query_one("#runs-empty").display
        assert app.screen.query_one("#open").disabled


async def test_the_hardware_probe_fills_the_panel_after_the_first_screen(home):
    app = TuneforgeApp()
    async with app.run_test(size=SIZE) as pilot:
        assert "probing" in text_of(app, "#hardware")
        await wait_until(pilot, lambda: app.hardware is not None, 120, "the hardware probe")
        await pilot.pause()
        assert "RAM" in text_of(app, "#hardware")


async def test_runs_are_listed_with_the_state_read_from_their_files(home, facts_file):
    config = RunConfig(data=str(facts_file))
    trained = new_run(config, home / "runs" / "a-trained")
    trained.record(Started(pid=1))
    trained.record(Step(step=3, max_steps=3, loss=0.5))
    trained.record(Finished())
    failed = new_run(config, home / "runs" / "b-failed")
    failed.record(Started(pid=999_999_999))  # no such process: the child died without a word
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs", DataTable)
        rows = {str(table.get_row(key)[0]): [str(cell) for cell in table.get_row(key)] for key in table.rows}
        assert rows["a-trained"][1:6] == ["SmolLM2-135M", "auto", "trained", "3/3", "0.500"]
        assert rows["b-failed"][3] == "failed"
        assert not app.screen.query_one("#runs-empty").display


async def test_question_mark_toggles_the_keys_of_the_screen(home):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert app.screen.query("HelpPanel")
        await pilot.press("question_mark")
        await pilot.pause()
        assert not app.screen.query("HelpPanel")


async def test_the_command_palette_offers_the_main_actions(home, facts_file):
    new_run(RunConfig(data=str(facts_file)), home / "runs" / "my-run")
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"New fine-tune", "Home", "Open run my-run"} <= set(titles)
        await pilot.press("n")
        assert type(app.screen).__name__ == "ModelScreen"


async def test_a_run_whose_export_failed_says_so_with_the_cause(home, facts_file):
    run = new_run(RunConfig(data=str(facts_file)), home / "runs" / "c-export")
    run.record(Started(pid=1))
    run.record(Finished())
    (run.export).mkdir()
    (run.export / "c-export-q8_0.gguf.unverified").write_bytes(b"GGUF")
    run.record(Exported(files=[str(run.export / "c-export-q8_0.gguf.unverified")], passed=False,
                        error="c-export-q8_0.gguf.unverified: llama.cpp crashed (SIGILL) while verifying it"))
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs", DataTable)
        assert [str(cell) for cell in table.get_row(str(run.path))][3] == "export failed"
        await pilot.pause()
        assert app.screen.query_one("#run-cause").display
        assert "crashed (SIGILL)" in text_of(app, "#run-cause")


def test_quitting_mid_run_says_training_goes_on(home, facts_file):
    import subprocess
    import sys

    from tuneforge.core.events import Launched
    from tuneforge.tui.app import still_working

    assert still_working() == []
    run = new_run(RunConfig(data=str(facts_file)), home / "runs" / "training")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.record(Launched(pid=child.pid))
        lines = still_working()
        assert lines == [f"training goes on in the background: {run.path}",
                         "follow it with `tuneforge runs`, or open tuneforge again"]
    finally:
        child.kill()
        child.wait()
    assert still_working() == []


async def test_compare_shows_the_finished_runs_or_the_marked_ones(home, facts_file):
    from tuneforge.tui.screens.compare import CompareScreen

    from .finished_run import finished_run

    first, second = finished_run(home / "runs" / "a-first"), finished_run(home / "runs" / "b-second")
    new_run(RunConfig(data=str(facts_file)), home / "runs" / "c-created")  # not finished: never compared
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the comparison")
        table = app.screen.query_one("#compare", DataTable)
        assert sorted(str(table.get_row_at(i)[0]) for i in range(table.row_count)) == [first.name, second.name]
        assert str(table.get_row_at(0)[7]) == "55/60"  # everyday answers kept, as `tuneforge compare` shows
        await pilot.press("escape")
        runs = app.screen.query_one("#runs", DataTable)
        runs.move_cursor(row=runs.get_row_index(str(first.path)))
        await pilot.press("space")  # mark the highlighted run
        await pilot.pause()
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the comparison of the marked run")
        table = app.screen.query_one("#compare", DataTable)
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == [first.name]


async def test_chat_with_a_gguf_offers_the_runs_verified_files_first(home, facts_file):
    from textual.widgets import OptionList

    from tuneforge.tui.widgets.pickers import GgufPicker

    from ..core.exports import write_export
    from .finished_run import finished_run

    run = finished_run(home / "runs" / "exported")
    write_export(run, "exported-q8_0.gguf", "exported-q4_0.gguf")
    verified = run.export / "exported-q8_0.gguf"
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, GgufPicker), what="the GGUF picker")
        files = app.screen.query_one("#gguf-files", OptionList)
        assert [str(files.get_option_at_index(i).id) for i in range(files.option_count)] == [str(verified)]

