"""Chat: the fine-tuned model (its verified GGUF through llama.cpp) and the base side by side, streamed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Header, Input, Static

from tuneforge.core.runs import RunDir

from ..errors import describe

MAX_NEW_TOKENS = 256


def load_base(run: RunDir) -> Any:
    """The run's base model to compare with: its GGUF when the base is one (the default is), else transformers."""
    from tuneforge.core.chat import load_chat_model
    from tuneforge.core.models import check_model_reference, default_gguf_path

    model = run.load_config().model
    kind = check_model_reference(model)
    if kind == "default":
        return load_chat_model(default_gguf_path())
    return load_chat_model(model)


class Pane(Vertical):
    """One model's side of the chat: its label, the conversation, and the messages sent to it."""

    def __init__(self, title: str, pane_id: str) -> None:
        super().__init__(id=pane_id, classes="chat-pane")
        self.title_text = title
        self.model: Any = None
        self.messages: list[dict[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, classes="pane-title")
        yield VerticalScroll(classes="conversation")

    def set_title(self, text: str) -> None:
        self.query_one(".pane-title", Static).update(text)

    def add_turn(self, role: str, text: str) -> Static:
        """Append a message and return its widget (a reply grows as pieces stream in)."""
        widget = Static(Text(text, style="bold" if role == "user" else ""), classes=f"turn {role}")
        scroll = self.query_one(".conversation", VerticalScroll)
        scroll.mount(widget)
        scroll.scroll_end(animate=False)
        return widget


class ChatScreen(Screen):
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

    def compose(self) -> ComposeResult:
        yield Header()
        name = self.run.name if self.run else Path(self.source).name
        yield Static(f"Chat · {name}  (greedy decoding, so answers are repeatable)", classes="step")
        with Horizontal(id="chat-panes"):
            yield Pane("fine-tuned: loading …", "tuned")
            yield Pane("base: loading …", "base")
        with Horizontal(id="chat-input"):
            yield Input(placeholder="Ask something and press Enter", id="prompt", compact=True)
            yield Checkbox("base beside it", value=self.run is not None, id="compare", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        if self.run is None:
            self.query_one("#compare", Checkbox).display = False
            self.query_one("#base").display = False
        else:
            self.query_one("#base").display = self.query_one("#compare", Checkbox).value
        self.query_one("#prompt", Input).focus()
        self.load_models()

    @work(thread=True, exclusive=True, exit_on_error=False, group="chat-load")
    def load_models(self) -> None:
        """Load the fine-tuned model first (what the person came for), then the base."""
        from tuneforge.core.chat import load_chat_model

        tuned, base = self.query_one("#tuned", Pane), self.query_one("#base", Pane)
        with self._busy:
            try:
                tuned.model = load_chat_model(self.run.path if self.run else self.source)
                self.app.call_from_thread(tuned.set_title, f"fine-tuned: {tuned.model.label}")
            except Exception as exc:  # noqa: BLE001 - shown in the pane with its hint
                self.app.call_from_thread(tuned.set_title, Text("fine-tuned: " + " — ".join(describe(exc)), style="red"))
            if self.run is not None:
                try:
                    base.model = load_base(self.run)
                    self.app.call_from_thread(base.set_title, f"base: {base.model.label}")
                except Exception as exc:  # noqa: BLE001
                    self.app.call_from_thread(base.set_title, Text("base: " + " — ".join(describe(exc)), style="red"))

    @on(Checkbox.Changed, "#compare")
    def _compare_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#base").display = event.value

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        event.input.value = ""
        panes = [self.query_one("#tuned", Pane)]
        if self.run is not None and self.query_one("#compare", Checkbox).value:
            panes.append(self.query_one("#base", Pane))
        self.reply(prompt, panes)

    @work(thread=True, exit_on_error=False, group="chat-reply")
    def reply(self, prompt: str, panes: list[Pane]) -> None:
        """Stream each model's answer into its pane, one model after the other (one CPU does one at a time)."""
        with self._busy:  # waits for the models to load, and for the previous answer
            for pane in panes:
                self.app.call_from_thread(pane.add_turn, "user", prompt)
                pane.messages.append({"role": "user", "content": prompt})
                if pane.model is None:
                    self.app.call_from_thread(pane.add_turn, "assistant", "(no model loaded)")
                    continue
                widget = self.app.call_from_thread(pane.add_turn, "assistant", "…")
                answer = ""
                try:
                    for piece in pane.model.stream(pane.messages, MAX_NEW_TOKENS):
                        answer += piece
                        self.app.call_from_thread(widget.update, answer)
                except Exception as exc:  # noqa: BLE001
                    self.app.call_from_thread(widget.update, Text(" — ".join(describe(exc)), style="red"))
                pane.messages.append({"role": "assistant", "content": answer.strip()})
                self.app.call_from_thread(widget.update, answer.strip() or "(empty answer)")

    def action_clear(self) -> None:
        """Forget the conversation on both sides."""
        for pane in self.query(Pane):
            pane.messages.clear()
            pane.query_one(".conversation").remove_children()

    def on_unmount(self) -> None:
        # Free the models now unless a worker is still generating with them (then GC frees them later).
        if self._busy.acquire(blocking=False):
            for pane in self.query(Pane):
                if pane.model is not None:
                    pane.model.close()
            self._busy.release()
