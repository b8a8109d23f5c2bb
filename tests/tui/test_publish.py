"""Publish in the app: the run view's p opens the form; a dry run writes a folder, an upload that cannot go says why."""

from __future__ import annotations

from tuneforge.core.publish import ADAPTER_FILES
from tuneforge.tui.app import TuneforgeApp

from .pilot import CPU_MACHINE, SIZE, text_of, wait_until


async def test_publish_from_the_run_view_writes_a_dry_run_and_says_why_an_upload_cannot_go(home):
    """p on a trained run: a dry run into a new folder of the run, then an upload refused offline (the tests run with
    HF_HUB_OFFLINE=1) as a message with its hint."""
    import json

    from textual.widgets import Input

    from tuneforge.tui.screens.publish import PublishForm
    from tuneforge.tui.screens.run import RunScreen

    from .finished_run import finished_run

    run = finished_run(home / "runs" / "trained")
    run.adapter.mkdir()
    (run.adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (run.adapter / "adapter_model.safetensors").write_bytes(b"weights")
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunScreen(run))
        await pilot.pause()
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, PublishForm), what="the publish form")
        app.screen.query_one("#publish-repo", Input).value = "me/brindlewick"
        await pilot.click("#publish-dry")
        await wait_until(pilot, lambda: "nothing was uploaded" in text_of(app, "#publish-status"), what="the dry run")
        assert {p.name for p in (run.path / "publish-preview").iterdir()} == {"README.md", *ADAPTER_FILES}
        await pilot.click("#publish-start")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "ErrorModal", what="the refusal")
        assert "the hub is switched off here" in text_of(app, "#error-message")
