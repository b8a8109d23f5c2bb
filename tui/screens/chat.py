"""Chat: the fine-tuned model (its verified GGUF through llama.cpp) and the base side by side, streamed."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Checkbox, Header, Input, Label, Static
from textual.worker import get_current_worker

from tuneforge.core.errors import TuneforgeError
from tuneforge.core.runs import RunDir

if TYPE_CHECKING:
    from tuneforge.core.api.chat import Sampling

from ..base import TuneforgeScreen
from ..errors import describe
from ..widgets import KeyFooter, Plain


class Pane(Vertical):
    """One model's side of the chat: its label, the conversation, and the messages sent to it."""

    def __init__(self, title: str, pane_id: str) -> None:
        super().__init__(id=pane_id, classes="chat-pane")
        self.title_text = title
        self.messages: list[dict[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Plain(self.title_text, classes="pane-title")
        yield VerticalScroll(classes="conversation")

    def set_title(self, text: str | Text) -> None:
        self.query_one(".pane-title", Static).update(text)

    def add_turn(self, role: str, text: str) -> Static:
        """Append a message and return its widget (a reply grows as pieces stream in)."""
        widget = Plain(Text(text, style="bold" if role == "user" else ""), classes=f"turn {role}")
        scroll = self.query_one(".conversation", VerticalScroll)
        scroll.mount(widget)
        scroll.scroll_end(animate=False)
        return widget


@dataclass
class ModelLoaded(Message):
    """A worker loaded a pane's model (or failed to, with the reason)."""

    pane_id: str
    label: str
    error: tuple[str, str] | None = None


@dataclass
class ReplyGrew(Message):
    """A worker has more of a reply: `text` so far, for the turn widget `turn`; `done` once it is whole."""

    pane_id: str
    turn: Static
    text: str | Text
    done: bool = False


class ChatScreen(TuneforgeScreen):
    """Chat with a run's model or a GGUF file; the base answers the same prompt beside it."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+l", "clear", "New conversation"),
    ]

    def __init__(self, source: RunDir | Path) -> None:
        super().__init__()
        self.source = source
        self.run = source if isinstance(source, RunDir) else None
        self._busy = threading.Lock()
        """Held by the loading worker, then by each reply: one model works at a time, and a reply waits for the load."""
        self.models: dict[str, Any] = {}
        """Each pane's loaded model, by pane id; written and read by workers under `_busy`."""
        self._screen_gone = threading.Event()
        """Set when the screen goes away: the worker holding `_busy` then frees the models."""

    def compose(self) -> ComposeResult:
        yield Header()
        name = self.run.name if self.run else Path(self.source).name
        yield Plain(f"Chat · {name}  (temperature 0 answers greedily: the same answer every time)", classes="step")
        with Horizontal(id="chat-panes"):
            yield Pane("fine-tuned: loading …", "tuned")
            yield Pane("base: loading …", "base")
        from tuneforge.core.api.chat import Sampling

        default = Sampling()
        with Horizontal(id="chat-settings"):
            yield Input(placeholder="system prompt (optional)", id="system", compact=True)
            for label, field, value in (("temp", "temperature", default.temperature), ("top-p", "top-p", default.top_p),
                                        ("tokens", "max-tokens", default.max_tokens)):
                yield Label(label)
                yield Input(f"{value:g}", id=field, compact=True, type="integer" if field == "max-tokens" else "number")
        with Horizontal(id="chat-input"):
            yield Input(placeholder="Ask something and press Enter", id="prompt", compact=True)
            yield Checkbox("base beside it", value=self.run is not None, id="compare", compact=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        if self.run is None:
            self.query_one("#compare", Checkbox).display = False
            self.query_one("#base").display = False
        else:
            self.query_one("#base").display = self.query_one("#compare", Checkbox).value
        self.query_one("#prompt", Input).focus()
        self.load_models(self.run.path if self.run else Path(self.source))

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load")
    def load_models(self, tuned_source: Path) -> None:
        """Load the fine-tuned model first (what the person came for), then the base (llama.cpp runs in child processes)."""
        from tuneforge.core.api.chat import load_base_beside, load_chat_model

        loaders = [("tuned", "fine-tuned", lambda: load_chat_model(tuned_source))]
        if self.run is not None:
            run = self.run
            loaders.append(("base", "base", lambda: load_base_beside(
                run, echo=lambda line: self.post_message(ModelLoaded("base", f"base: {line}")))))
        with self._working():
            for pane_id, role, load in loaders:
                if get_current_worker().is_cancelled:
                    return
                try:
                    self.models[pane_id] = model = load()
                except Exception as exc:  # noqa: BLE001 - shown in the pane with its hint
                    self.post_message(ModelLoaded(pane_id, role, describe(exc)))
                    continue
                self.post_message(ModelLoaded(pane_id, f"{role}: {model.label}"))

    def on_model_loaded(self, message: ModelLoaded) -> None:
        pane = self.query_one(f"#{message.pane_id}", Pane)
        if message.error is None:
            pane.set_title(message.label)
        else:
            pane.set_title(Text(f"{message.label}: " + " — ".join(message.error), style="red"))

    @on(Checkbox.Changed, "#compare")
    def _compare_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#base").display = event.value

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        try:
            sampling = self.sampling()
        except (ValueError, TuneforgeError) as exc:
            self.notify(getattr(exc, "hint", "") or str(exc), title="chat settings", severity="error", markup=False)
            return
        event.input.value = ""
        panes = [self.query_one("#tuned", Pane)]
        if self.run is not None and self.query_one("#compare", Checkbox).value:
            panes.append(self.query_one("#base", Pane))
        jobs = []
        for pane in panes:
            pane.add_turn("user", prompt)
            pane.messages.append({"role": "user", "content": prompt})
            jobs.append((pane.id, pane.add_turn("assistant", "…"), list(pane.messages)))
        self.reply(jobs, sampling)

    def sampling(self) -> Sampling:
        """The settings row as core's Sampling; a ValueError or ConfigError says what is wrong."""
        from tuneforge.core.api.chat import Sampling

        default = Sampling()
        value = {name: self.query_one(f"#{name}", Input).value.strip() for name in ("temperature", "top-p", "max-tokens")}
        return Sampling(float(value["temperature"] or default.temperature), float(value["top-p"] or default.top_p),
                        int(value["max-tokens"] or default.max_tokens), self.query_one("#system", Input).value)

    @work(thread=True, exit_on_error=False, group="chat-reply")
    def reply(self, jobs: list[tuple[str, Static, list[dict[str, str]]]], sampling: Sampling) -> None:
        """Stream each model's answer into its turn, one model after the other (one CPU does one at a time)."""
        worker = get_current_worker()
        with self._working():  # waits for the models to load, and for the previous answer
            for pane_id, turn, messages in jobs:
                model = self.models.get(pane_id)
                if model is None:
                    self.post_message(ReplyGrew(pane_id, turn, "(no model loaded)", done=True))
                    continue
                answer = ""
                try:
                    for piece in sampling.stream(model, messages):
                        if worker.is_cancelled:  # the conversation was cleared, or the screen closed
                            return
                        answer += piece
                        self.post_message(ReplyGrew(pane_id, turn, answer))
                except Exception as exc:  # noqa: BLE001 - a crashed llama.cpp child says why in the pane
                    self.post_message(ReplyGrew(pane_id, turn, Text(" — ".join(describe(exc)), style="red"), done=True))
                    continue
                self.post_message(ReplyGrew(pane_id, turn, answer.strip(), done=True))

    def on_reply_grew(self, message: ReplyGrew) -> None:
        if not message.turn.is_attached:
            return  # cleared meanwhile
        text = message.text or ("(empty answer)" if message.done else "")
        message.turn.update(text)
        if message.done and isinstance(message.text, str):
            self.query_one(f"#{message.pane_id}", Pane).messages.append({"role": "assistant", "content": message.text})

    def action_clear(self) -> None:
        """Forget the conversation on both sides (an answer still coming is dropped)."""
        self.workers.cancel_group(self, "chat-reply")
        for pane in self.query(Pane):
            pane.messages.clear()
            pane.query_one(".conversation").remove_children()

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        """Hold `_busy` for a worker; if the screen closed meanwhile, free the models on the way out."""
        with self._busy:
            try:
                yield
            finally:
                if self._screen_gone.is_set():
                    self._close_models()

    def _close_models(self) -> None:
        for model in self.models.values():
            model.close()
        self.models.clear()

    def on_unmount(self) -> None:
        self._screen_gone.set()
        self.workers.cancel_group(self, "chat-reply")
        self.workers.cancel_group(self, "chat-load")
        # Free the models now unless a worker holds them (it frees them when it ends, at the next piece at the latest).
        if self._busy.acquire(blocking=False):
            try:
                self._close_models()
            finally:
                self._busy.release()
