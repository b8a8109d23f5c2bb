"""GRPO's rewards picked from a list: each kind with what it checks, its argument and its weight, checked as added."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from tuneforge.core.errors import ConfigError
from tuneforge.core.rewards import ARGUMENT_HELP, DEFAULT_REWARDS, KINDS, NEEDS_ARGUMENT, REFERENCE_KINDS, Reward

from . import Plain

REFERENCE_NOTE = ("The reference is each record's answer: a chat's last answer, a `completion`, a pair's chosen one. To "
                  "compare with another field of your file, map it to `completion` in the Data step's columns.")


class RewardEditor(ModalScreen[list[str] | None]):
    """Edit a GRPO run's rewards; returns them as written (`[WEIGHT*]KIND[:ARGUMENT]`), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("delete", "remove", "Remove the highlighted reward")]

    def __init__(self, written: list[str]) -> None:
        super().__init__()
        self.rewards = [reward for reward in map(_parsed, written or DEFAULT_REWARDS) if reward is not None]
        """The rewards being edited; one mistyped in the form's field is left out (the field says what is wrong)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="reward-editor"):
            yield Plain("Rewards: each sampled answer scores the weighted sum of these", classes="title")
            yield OptionList(id="reward-list")
            with Horizontal(classes="reward-row"):
                yield Select(tuple((kind, kind) for kind in KINDS), value="contains", allow_blank=False, id="reward-kind", compact=True)
                yield Input(placeholder="no argument", id="reward-argument", compact=True)
                yield Label("weight")
                yield Input("1", id="reward-weight", compact=True)
                yield Button("Add", id="reward-add", compact=True)
            yield Plain("", id="reward-help", classes="field-help")
            yield Plain("", id="reward-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Done", id="reward-done", variant="primary")
                yield Button("Remove", id="reward-remove")
                yield Button("Cancel", id="reward-cancel")

    def on_mount(self) -> None:
        self.show_rewards()
        self.describe("contains")

    def show_rewards(self) -> None:
        """The rewards so far, one line each: as written, then what it checks."""
        listing = self.query_one("#reward-list", OptionList)
        listing.clear_options()
        listing.add_options(Option(f"{reward.written():<24} {KINDS[reward.kind]}") for reward in self.rewards)

    @on(Select.Changed, "#reward-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self.describe(str(event.value))

    def describe(self, kind: str) -> None:
        """The chosen kind's explanation (and where a reference comes from), and what its argument takes."""
        argument = self.query_one("#reward-argument", Input)
        argument.placeholder = ARGUMENT_HELP.get(kind, "no argument") + ("" if kind in NEEDS_ARGUMENT or kind not in ARGUMENT_HELP
                                                                          else " (optional)")
        argument.disabled = kind not in ARGUMENT_HELP
        if argument.disabled:
            argument.value = ""
        self.query_one("#reward-help", Static).update(KINDS[kind] + (f". {REFERENCE_NOTE}" if kind in REFERENCE_KINDS else ""))

    @on(Button.Pressed, "#reward-add")
    @on(Input.Submitted, "#reward-argument, #reward-weight")
    def add(self) -> None:
        """Add the reward the row describes, or say what is wrong with it."""
        kind = str(self.query_one("#reward-kind", Select).value)
        argument = self.query_one("#reward-argument", Input).value.strip()
        weight = self.query_one("#reward-weight", Input).value.strip() or "1"
        error = self.query_one("#reward-error", Static)
        try:
            if float(weight) <= 0:
                raise ValueError
        except ValueError:
            error.update(f"weight {weight}: a number above 0")
            return
        written = f"{weight}*{kind}" if float(weight) != 1 else kind
        try:
            reward = Reward.parse(f"{written}:{argument}" if argument else written)
        except ConfigError as exc:
            error.update(exc.message)
            return
        error.update("")
        self.rewards.append(reward)
        self.query_one("#reward-argument", Input).value = ""
        self.show_rewards()

    @on(Button.Pressed, "#reward-remove")
    def action_remove(self) -> None:
        """Remove the highlighted reward."""
        highlighted = self.query_one("#reward-list", OptionList).highlighted
        if highlighted is not None and highlighted < len(self.rewards):
            del self.rewards[highlighted]
            self.show_rewards()

    @on(Button.Pressed, "#reward-done")
    def _done(self) -> None:
        if not self.rewards:
            self.query_one("#reward-error", Static).update("add at least one reward (or Cancel)")
            return
        self.dismiss([reward.written() for reward in self.rewards])

    @on(Button.Pressed, "#reward-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _parsed(written: str) -> Reward | None:
    try:
        return Reward.parse(written)
    except ConfigError:
        return None
