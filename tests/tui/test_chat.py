"""The Chat screen: llama.cpp answers from a child process, and a child that dies is a message, not a dead app."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Static

from tuneforge.exporters.gguf.probe import write_probe_model
from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.screens.chat import ChatScreen

from .pilot import CPU_MACHINE, SIZE, wait_until

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


@pytest.fixture()
def gguf_file(tmp_path: Path) -> Path:
    """A tiny quantized GGUF (random weights: its answers are noise, but llama.cpp runs it for real)."""
    return write_probe_model(tmp_path / "probe-q8_0.gguf", "q8_0")


def replies(app) -> list[str]:
    return [str(widget.render()) for widget in app.screen.query("#tuned .turn.assistant").results(Static)]


async def ask(pilot, app, prompt: str) -> None:
    """Send `prompt` and wait until its answer is complete on the screen."""
    app.screen.query_one("#prompt", Input).value = prompt
    await pilot.press("enter")
    await wait_until(pilot, lambda: not any(w.group == "chat-reply" and not w.is_finished for w in app.screen.workers),
                     120, "the answer")
    await pilot.pause()


async def test_a_chat_child_killed_by_a_signal_shows_the_error_and_the_app_goes_on(home, gguf_file, llama_crash):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ChatScreen(gguf_file))
        await wait_until(pilot, lambda: "tuned" in app.screen.models, 60, "the GGUF to load")
        child = app.screen.models["tuned"]._child
        assert child is not None and child.poll() is None, "llama.cpp runs in a child process"

        await ask(pilot, app, "Hello?")
        assert "crashed" not in replies(app)[-1]

        llama_crash("probe-q8_0", "create_chat_completion", "SIGSEGV")  # the next child dies while answering
        app.screen.models["tuned"].close()
        await ask(pilot, app, "And now?")
        assert "llama.cpp crashed (SIGSEGV) while answering" in replies(app)[-1]
        assert str(gguf_file) in replies(app)[-1] and "export it again" in replies(app)[-1]
        assert app.is_running and type(app.screen).__name__ == "ChatScreen"
        assert [m["role"] for m in app.screen.query_one("#tuned").messages] == ["user", "assistant", "user"]


async def test_the_chat_settings_shape_the_answer(home, gguf_file):
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ChatScreen(gguf_file))
        await wait_until(pilot, lambda: "tuned" in app.screen.models, 60, "the GGUF to load")
        app.screen.query_one("#max-tokens", Input).value = "2"
        await ask(pilot, app, "Hello?")
        short = replies(app)[-1]
        app.screen.query_one("#max-tokens", Input).value = "40"
        await ask(pilot, app, "Hello?")
        assert 0 < len(short) < len(replies(app)[-1])  # the length setting reaches llama.cpp
        app.screen.query_one("#temperature", Input).value = "9"
        app.screen.query_one("#prompt", Input).value = "Too hot?"
        await pilot.press("enter")
        await pilot.pause()
        assert len(replies(app)) == 2 and app.screen.query_one("#prompt", Input).value == "Too hot?"  # refused, kept
