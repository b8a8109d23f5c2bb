"""Publish: a run to the Hugging Face Hub (or first into a folder, to look at), as `tuneforge push` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, Input, Label, Static
from textual.worker import Worker

from tuneforge.core.api.publish import WHAT
from tuneforge.core.runs import RunDir

from ..base import TuneforgeModal
from ..widgets import Plain


@dataclass
class Published(Message):
    """The upload (or the dry run into `folder`) ended: its files' names."""

    files: list[str]
    folder: Path | None


def preview_folder(run: RunDir) -> Path:
    """A new folder in the run for a dry run: publish-preview, then -2, -3 … (a dry run never writes over one)."""
    candidates = (run.path / ("publish-preview" if n == 1 else f"publish-preview-{n}") for n in range(1, 1000))
    return next(path for path in candidates if not path.exists())


class PublishForm(TuneforgeModal[None]):
    """Where to (OWNER/NAME), what (the adapter, the merged model, the verified GGUFs), private or not; Publish, or
    Dry run into a folder of the run."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, run: RunDir) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        has = {"adapter": (self.run.adapter / "adapter_config.json").is_file(),
               "merged": (self.run.merged / "config.json").is_file(), "gguf": (self.run.export / "export-report.json").is_file()}
        with Vertical(id="publish-form"):
            yield Plain(f"Publish {self.run.name} to the Hugging Face Hub", classes="title")
            yield Label("repository (OWNER/NAME; created if it does not exist)")
            yield Input(placeholder="your-name/model-name", id="publish-repo")
            with Horizontal(classes="field-row"):
                for item in WHAT:
                    yield Checkbox(item, value=has[item] and item != "merged", id=f"publish-{item}", disabled=not has[item],
                                   compact=True)
                yield Checkbox("private", id="publish-private", compact=True)
            yield Plain("The token comes from HF_TOKEN or `hf auth login`; only verified GGUFs go, with a model card "
                        "made from the run.", classes="field-help")
            yield Plain("", id="publish-status")
            with Horizontal(classes="buttons"):
                yield Button("Publish", id="publish-start", variant="primary", compact=True)
                yield Button("Dry run", id="publish-dry", compact=True)
                yield Button("Cancel", id="publish-cancel", compact=True)

    def chosen(self) -> list[str]:
        """What is ticked."""
        return [item for item in WHAT if self.query_one(f"#publish-{item}", Checkbox).value]

    @on(Button.Pressed, "#publish-start")
    @on(Button.Pressed, "#publish-dry")
    @on(Input.Submitted)
    def start(self, event: Button.Pressed | Input.Submitted) -> None:
        dry = isinstance(event, Button.Pressed) and event.button.id == "publish-dry"
        folder = preview_folder(self.run) if dry else None
        self.query_one("#publish-status", Static).update("Writing the folder …" if dry else "Uploading …")
        for button in self.query(Button):
            button.disabled = button.id != "publish-cancel"
        self.publish(self.query_one("#publish-repo", Input).value.strip(), self.chosen(),
                     self.query_one("#publish-private", Checkbox).value, folder)

    @work(thread=True, exclusive=True, exit_on_error=False, group="publish")
    def publish(self, repo: str, what: list[str], private: bool, folder: Path | None) -> None:
        """`tuneforge push` in this worker; the outcome comes back as a Published message."""
        from tuneforge.core.api.publish import push

        self.post_message(Published(push(self.run, repo, what, private, folder, echo=None), folder))

    def worker_failed(self, worker: Worker) -> None:
        for button in self.query(Button):
            button.disabled = False
        self.query_one("#publish-status", Static).update("")

    def on_published(self, message: Published) -> None:
        for button in self.query(Button):
            button.disabled = False
        where = message.folder if message.folder is not None else self.query_one("#publish-repo", Input).value.strip()
        self.query_one("#publish-status", Static).update(
            f"{len(message.files)} files written into {where} (its README.md is the card); nothing was uploaded."
            if message.folder is not None else f"Published {len(message.files)} files: https://huggingface.co/{where}")

    @on(Button.Pressed, "#publish-cancel")
    def cancel(self) -> None:
        self.dismiss()
