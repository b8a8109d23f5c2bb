"""The tuneforge app: a guided, keyboard-first walk from a base model to a verified GGUF and a chat.

Home → Model → Data → Train (form, then the run's live view) → Export → Chat; from a run, Shrink. Every screen
is a thin shell over tuneforge.core: one user action is one core call, run in a worker;
training runs as a child process (`python -m tuneforge.core.train RUN_DIR`) that outlives the app.
Screens other than Home are imported when first opened, so the app starts fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from tuneforge.core.hardware import Hardware
from tuneforge.core.runs import RunDir, list_runs

from .errors import describe
from .screens.home import HomeScreen
from .session import Session

if TYPE_CHECKING:
    import subprocess

    from tuneforge.core.api.shrink import ShrinkDir
    from tuneforge.core.jobs import JobDir


class TuneforgeApp(App[None]):
    """The application; `hardware` fills in once the probe (which imports torch) is done."""

    TITLE = "tuneforge"
    SUB_TITLE = "fine-tune · export · chat, offline"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    """Screens whose layout changes on a narrow terminal style `Screen.-narrow` (see app.tcss)."""
    BINDINGS = [
        Binding("question_mark,f1", "toggle_keys", "Keys"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    hardware: reactive[Hardware | None] = reactive(None)

    def __init__(self, hardware: Hardware | None = None) -> None:
        """`hardware` skips the probe (tests and screenshots pass a fixed machine)."""
        super().__init__()
        self.session = Session()
        self._given_hardware = hardware

    def get_default_screen(self) -> Screen:
        return HomeScreen()

    def on_mount(self) -> None:
        if self._given_hardware is not None:
            self.hardware = self._given_hardware
        else:  # after the first frame: importing torch in a thread would hold the GIL and delay it
            self.call_after_refresh(self.probe_hardware)

    @work(thread=True, exit_on_error=False, group="hardware")
    def probe_hardware(self) -> None:
        """Detect GPU, RAM and disk off the UI thread (torch takes seconds to import)."""
        from tuneforge.core.hardware import detect
        from tuneforge.core.paths import tuneforge_home

        try:
            hardware = detect(tuneforge_home())
        except Exception as exc:  # noqa: BLE001 - the app works without the probe; say why it failed
            self.call_from_thread(self.notify, f"could not probe the hardware: {describe(exc)[0]}", severity="warning")
            return
        self.call_from_thread(setattr, self, "hardware", hardware)

    def action_toggle_keys(self) -> None:
        """Show or hide the key bindings of the current screen."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    # Navigation, shared by buttons, bindings and the command palette.

    def go_home(self) -> None:
        """Back to the Home screen, closing the screens above it."""
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_home(self) -> None:
        """The `escape` of screens that sit above Home directly."""
        self.go_home()

    def new_finetune(self) -> None:
        """Start the guided flow at the model picker."""
        from .screens.model import ModelScreen

        self.go_home()
        self.push_screen(ModelScreen())

    def use_prepared(self, folder: Path) -> None:
        """Hand a prepared folder to the Data step: its train.jsonl is checked there, its eval.jsonl is held out."""
        from .screens.data import DataScreen

        while len(self.screen_stack) > 1 and not isinstance(self.screen, DataScreen):
            self.pop_screen()
        if not isinstance(self.screen, DataScreen):
            self.push_screen(DataScreen())
        from tuneforge.core.api.data import prepared_training_files

        train, held_out = prepared_training_files(folder)
        self.session.data, self.session.eval_data = str(train), str(held_out) if held_out else None
        self.call_after_refresh(self.screen.check_prepared)

    def open_run(self, run: RunDir) -> None:
        """The run's live view: progress, loss chart, stop/resume, and the way on to export and chat."""
        from .screens.run import RunScreen

        self.go_home()
        self.push_screen(RunScreen(run))

    def open_shrink(self, shrink: ShrinkDir) -> None:
        """A shrink's live view: its stages, the current stage's healing, stop/resume."""
        from .screens.shrink import ShrinkScreen

        self.go_home()
        self.push_screen(ShrinkScreen(shrink))

    def follow_job(self, job: JobDir, child: subprocess.Popen) -> None:
        """Keep the child this app started for `job` (reaped when it exits) and open the job's live view."""
        self.session.children[job] = child
        self.open_job(job)

    def open_job(self, job: JobDir) -> None:
        """The live view of a run or a shrink."""
        from tuneforge.core.api.shrink import ShrinkDir

        if isinstance(job, ShrinkDir):
            self.open_shrink(job)
        elif isinstance(job, RunDir):
            self.open_run(job)

    def open_export(self, run: RunDir) -> None:
        """The export screen of a trained run."""
        from .screens.export import ExportScreen

        self.push_screen(ExportScreen(run))

    def open_eval(self, run: RunDir) -> None:
        """The evaluation of a trained run: its scores, and its answers compared blind."""
        from .screens.evaluate import EvalScreen

        self.push_screen(EvalScreen(run))

    def open_chat(self, source: RunDir | Path) -> None:
        """Chat with a run's model (its verified GGUF when exported) or a GGUF file."""
        from .screens.chat import ChatScreen

        self.push_screen(ChatScreen(source))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New fine-tune", "Pick a model, check data, train", self.new_finetune)
        yield SystemCommand("Home", "Hardware and recent runs", self.go_home)
        for run in list_runs()[:10]:
            yield SystemCommand(f"Open run {run.name}", f"{run.state()} · {run.path}", lambda run=run: self.open_run(run))
        from tuneforge.core.api.shrink import list_shrinks

        for shrink in list_shrinks()[:5]:
            yield SystemCommand(f"Open shrink {shrink.path.name}", f"{shrink.state()} · {shrink.path}",
                                lambda shrink=shrink: self.open_shrink(shrink))


def main() -> None:
    """Open the app (what `tuneforge` with no arguments does).

    Native libraries (llama.cpp, CUDA) write notices straight to file descriptor 2, where
    Textual draws the screen. While the app runs, Textual draws on a duplicate of the
    terminal and descriptor 2 goes to TUNEFORGE_HOME/tui.log, so nothing scribbles over it.
    """
    import os
    import sys

    from tuneforge.core.paths import tuneforge_home
    from tuneforge.core.quiet import quiet_libraries

    quiet_libraries(progress_bars=False)
    log_file = tuneforge_home() / "tui.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    original = sys.__stderr__
    terminal = os.fdopen(os.dup(2), "w", encoding="utf-8", errors="replace")
    with log_file.open("a", encoding="utf-8") as log:
        sys.__stderr__ = terminal
        os.dup2(log.fileno(), 2)
        app = TuneforgeApp()
        try:
            app.run()
        finally:
            os.dup2(terminal.fileno(), 2)
            sys.__stderr__ = original
            terminal.close()
    for line in still_working():
        print(line)


def still_working() -> list[str]:
    """What goes on after the app closes (training and shrinking run in children of their own), as lines for the
    terminal: a person who quits mid-run should not think the run ended, or that it is lost."""
    from tuneforge.core.api.shrink import list_shrinks

    lines = [f"training goes on in the background: {run.path}" for run in list_runs() if run.pid()]
    lines += [f"shrinking goes on in the background: {shrink.path}" for shrink in list_shrinks() if shrink.pid()]
    if lines:
        lines.append("follow it with `tuneforge runs`, or open tuneforge again")
    return lines
