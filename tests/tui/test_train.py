"""Train: the form's validation and memory estimate; Start launches a real training child that the
live view follows; the child outlives the app, a new app re-attaches to it, and Stop and Resume work."""

from __future__ import annotations

import os
import signal

import pytest
from textual.widgets import DataTable, Input, ProgressBar

from tuneforge.core.events import Downloading, Failed, Launched, Started, Step
from tuneforge.core.runs import RunDir, list_runs
from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.screens.train import TrainFormScreen

from .pilot import CPU_MACHINE, SIZE, text_of, wait_until

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


@pytest.fixture()
def form_app(home, tiny_llama, facts_file):
    """An app whose session has picked the tiny model and the facts file (as the first two steps do)."""
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model, app.session.data, app.session.eval_split = str(tiny_llama), str(facts_file), 0.0
    return app


@pytest.fixture()
def no_children_left(home):
    """Kill any training child a failed test leaves behind."""
    yield
    for run in list_runs():
        pid = run.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)


def set_fields(app, **values: str) -> None:
    for name, value in values.items():
        app.screen.query_one(f"#field-{name}", Input).value = value


async def test_bad_values_are_explained_and_start_creates_nothing(form_app, home):
    async with form_app.run_test(size=SIZE) as pilot:
        await form_app.push_screen(TrainFormScreen())
        set_fields(form_app, learning_rate="abc")
        await pilot.pause()
        assert "number" in text_of(form_app, "#help-learning_rate").lower()
        await pilot.press("ctrl+s")
        assert "learning rate: not a number" in text_of(form_app, "#form-errors")
        set_fields(form_app, learning_rate="5", epochs="0")
        await pilot.press("ctrl+s")
        errors = text_of(form_app, "#form-errors")
        assert "learning_rate" in errors and "epochs" in errors  # every problem at once
        assert not list_runs()


async def test_the_memory_estimate_follows_the_batch_size(form_app):
    async with form_app.run_test(size=SIZE) as pilot:
        await form_app.push_screen(TrainFormScreen())
        before = text_of(form_app, "#memory")
        assert "Memory plan (CPU)" in before and "fits" in before
        set_fields(form_app, batch_size="64")
        await pilot.pause()
        after = text_of(form_app, "#memory")
        total = [float(line.split()[1]) for text in (before, after) for line in text.splitlines() if line.startswith("total")]
        assert total[1] > total[0]


async def test_a_batch_larger_than_the_data_is_said_and_planned_as_the_batch_that_can_happen(form_app):
    from tuneforge.core.api.data import check_data

    form_app.session.report = check_data(form_app.session.data, form_app.session.model, 256, 0.0)
    examples = form_app.session.report.stats.train_examples
    async with form_app.run_test(size=SIZE) as pilot:
        await form_app.push_screen(TrainFormScreen())
        set_fields(form_app, batch_size="512", replay="0")
        await pilot.pause()
        memory = text_of(form_app, "#memory")
        assert f"batch_size 512 is more than the {examples} training examples" in memory, memory


async def test_the_form_offers_the_gpu_count_and_the_launch_on_a_machine_with_several(home, tiny_llama, facts_file):
    from dataclasses import replace

    two_gpus = replace(CPU_MACHINE, cuda=True, gpu_name="NVIDIA GeForce RTX 4090", vram_total_gb=24.0, vram_free_gb=23.0,
                       bf16=True, gpu_count=2, compute_capability="8.9")
    for machine, offered in ((CPU_MACHINE, False), (two_gpus, True)):
        app = TuneforgeApp(hardware=machine)
        app.session.model, app.session.data, app.session.eval_split = str(tiny_llama), str(facts_file), 0.0
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(TrainFormScreen())
            await pilot.pause()
            assert bool(app.screen.query("#field-processes")) == offered
            if offered:
                set_fields(app, processes="2")
                await pilot.pause()
                assert "2 GPUs, DDP: accelerate launch --config_file RUN_DIR/accelerate.yaml" in text_of(app, "#memory")
                assert app.screen.values()["processes"] == 2


async def test_start_stop_reattach_and_resume_a_real_training_child(form_app, home, no_children_left):
    # Start: the form launches `tuneforge train RUN_DIR` and the live view shows its steps.
    async with form_app.run_test(size=SIZE) as pilot:
        await form_app.push_screen(TrainFormScreen())
        set_fields(form_app, max_steps="3000", learning_rate="0.005")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: type(form_app.screen).__name__ == "RunScreen", 60, "the run's live view")
        run: RunDir = form_app.screen.run
        await wait_until(pilot, lambda: form_app.screen.history.last_step is not None, 180, "the first step")
        await pilot.pause()
        assert form_app.screen.query_one("#progress", ProgressBar).progress >= 1
        assert "tok/s" in text_of(form_app, "#figures")
        assert not form_app.screen.query_one("#stop").disabled
    # Closing the app leaves the child training.
    assert run.state() == "running" and run.pid() is not None

    # A new app lists the run as running and re-attaches to its live view.
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs", DataTable)
        assert str(table.get_row_at(0)[3]) == "running"  # run, model, method, state
        await pilot.press("o")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunScreen", 10, "the live view")
        seen = app.screen.history.last_step.step if app.screen.history.last_step else 0
        await wait_until(pilot, lambda: (app.screen.history.last_step.step if app.screen.history.last_step else 0) > seen, 60, "a new step after re-attaching")
        assert len(app.screen.history.steps) >= 2  # the history before re-attaching is replayed
        # While it trains, Resume and Export say why they do nothing.
        said: list[str] = []
        app.screen.notify = lambda message, **kwargs: said.append(message)
        await pilot.press("r", "e")
        assert said == ["This run is training: it goes on by itself (stop it first to resume it later).",
                        "Export needs a trained run: this one is running."]
        del app.screen.notify

        # Stop: the child checkpoints at the end of the step and exits; Resume becomes available.
        await pilot.press("s")
        await wait_until(pilot, lambda: run.state() == "stopped", 120, "the run to stop")
        await pilot.pause(1)
        assert "checkpoint saved" in text_of(app, "#figures")
        assert not app.screen.query_one("#resume").disabled and app.screen.query_one("#stop").disabled
        stopped_at = app.screen.history.last_step.step

        # Resume continues from the checkpoint in a new child.
        await pilot.press("r")
        await wait_until(pilot, lambda: app.screen.history.last_step.step > stopped_at, 180, "a step after resuming")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.state() == "stopped", 120, "the resumed run to stop")
    resumed = [e for e in run.history().events if isinstance(e, Started)][-1]
    assert resumed.resume_from.endswith(f"checkpoint-{stopped_at}")


async def test_a_child_that_died_shows_as_failed_with_the_cause_from_its_log(home, facts_file):
    from tuneforge.core.config import RunConfig
    from tuneforge.core.runs import new_run
    from tuneforge.tui.screens.run import RunScreen

    run = new_run(RunConfig(data=str(facts_file)), home / "runs" / "killed")
    run.record(Launched(pid=999_999_999))
    run.log_file.write_text("loading the model …\nKilled\n")
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunScreen(run))
        await pilot.pause()
        figures = text_of(app, "#figures")
        assert "the training process ended without a word" in figures and "Killed" in figures
        assert "no checkpoint was saved yet" in figures
        assert "failed" in text_of(app, "#run-title")
        assert app.screen.query_one("#resume").disabled  # nothing to resume from: no checkpoint
        # The cause is written down, so the CLI's `tuneforge runs` and the next app session see it too.
        assert isinstance(run.history().lifecycle, Failed)
        assert app.screen.query_one("#export").disabled


async def test_a_child_the_out_of_memory_killer_took_offers_resume(home, facts_file, monkeypatch):
    from tuneforge.core.checkpoint_folders import COMPLETE_MARKER
    from tuneforge.core.config import RunConfig
    from tuneforge.core.runs import new_run
    from tuneforge.tui.screens.run import RunScreen

    run = new_run(RunConfig(data=str(facts_file)), home / "runs" / "oom")
    run.record(Launched(pid=999_999_999, oom_kills=7))
    run.record(Step(step=5, max_steps=40, epoch=0.5, loss=1.2, memory_gb=20.4))
    (run.checkpoints / "checkpoint-4").mkdir(parents=True)
    (run.checkpoints / "checkpoint-4" / COMPLETE_MARKER).write_text("4")
    monkeypatch.setattr("tuneforge.core.diagnosis.oom_kills", lambda: 8)  # the kernel killed one more process since
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunScreen(run))
        await pilot.pause()
        figures = text_of(app, "#figures")
        assert "killed by the out-of-memory killer: its last step used 20.4 GB" in figures
        assert "lower batch_size" in figures and "use method qlora; then resume from the last checkpoint with Resume (r) in the run's view" in figures
        assert "tuneforge train" not in figures and "--" not in figures  # the app's controls, not the CLI's
        assert not app.screen.query_one("#resume").disabled


async def test_the_run_view_shows_the_base_models_download_before_training(home, facts_file):
    from tuneforge.core.config import RunConfig
    from tuneforge.core.runs import new_run
    from tuneforge.tui.screens.run import RunScreen

    run = new_run(RunConfig(data=str(facts_file), model="org/model"), home / "runs" / "downloading")
    run.record(Launched(pid=os.getpid()))  # a live process: the run is running
    run.record(Downloading(model="org/model", done_bytes=2**30, total_bytes=4 * 2**30))
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunScreen(run))
        await pilot.pause()
        assert "downloading org/model: 1.00 of 4.00 GB (25%)" in text_of(app, "#figures")
        bar = app.screen.query_one("#progress", ProgressBar)
        assert (bar.progress, bar.total) == (2**30, 4 * 2**30)
        run.record(Downloading(model="org/model", done_bytes=4 * 2**30, total_bytes=4 * 2**30))
        await pilot.pause(0.7)  # the next poll
        assert "loading the model" in text_of(app, "#figures")
