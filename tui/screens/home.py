"""Home: what this machine has, the recent runs with their state, and the way to a new fine-tune."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Header, Static

from tuneforge.core.events import RunHistory
from tuneforge.core.hardware import Hardware
from tuneforge.core.methods import auto_method
from tuneforge.core.runs import RunDir, list_runs

from ..base import TuneforgeScreen
from ..errors import in_app_words
from ..session import model_label
from ..widgets import KeyFooter, Plain, plain_cells

REFRESH_SECONDS = 2.0
STATE_STYLE = {"running": "bold yellow", "failed": "bold red", "stopped": "yellow", "exported": "bold green",
               "merged": "green", "trained": "green", "export failed": "bold red"}


def hardware_text(hardware: Hardware | None) -> str:
    """The hardware panel's lines, and what they mean for training."""
    if hardware is None:
        return "probing the GPU, memory and disk …"
    lines = []
    if hardware.cuda:
        count = f" × {hardware.gpu_count}" if hardware.gpu_count > 1 else ""
        lines += [f"GPU   {hardware.gpu_name}{count}",
                  f"VRAM  {hardware.vram_total_gb:.1f} GB ({hardware.vram_free_gb:.1f} free)",
                  f"CUDA  yes · compute {hardware.compute_capability} · bf16 {'yes' if hardware.bf16 else 'no (fp16)'}"]
    else:
        lines += ["GPU   none (no CUDA)",
                  f"CPU   {hardware.cores_label} · bf16 {'yes' if hardware.cpu_bf16 else 'no (fp32)'}"]
    lines += [f"RAM   {hardware.ram_total_gb:.1f} GB ({hardware.ram_available_gb:.1f} free)",
              f"Disk  {hardware.disk_free_gb:.0f} GB free"]
    method = {"qlora": "QLoRA (4-bit)", "lora": "LoRA\n  (QLoRA trains here too)"}.get(auto_method(hardware.cuda))
    lines += ["", f"Default method: {method}"]
    return "\n".join(lines)


MODEL_COLUMN = 20
"""The model's name is cut to this width in the runs table, so an 80-column terminal shows the loss columns."""


def what_it_trains(run: RunDir) -> tuple[str, str]:
    """(model, method) of a run as the runs table shows them; '?' for a config that cannot be read."""
    try:
        config = run.load_config()
    except Exception:  # noqa: BLE001 - a damaged config.yaml still lists the run
        return "?", "?"
    label = model_label(config.model).removesuffix("-Instruct (built in)")
    return (label if len(label) <= MODEL_COLUMN else label[:MODEL_COLUMN - 1] + "…"), config.method


class HomeScreen(TuneforgeScreen):
    """The first screen: hardware panel, recent runs, New fine-tune."""

    BINDINGS = [
        Binding("n", "new", "New fine-tune"),
        Binding("o", "open", "Open run"),
        Binding("g", "chat_file", "Chat GGUF"),
        Binding("space", "mark", "Mark"),
        Binding("m", "compare", "Compare"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="home"):
            with Vertical(id="hardware-panel", classes="panel"):
                yield Plain("This machine", classes="title")
                yield Plain(hardware_text(None), id="hardware")
            with Vertical(id="runs-panel", classes="panel"):
                yield Plain("Recent runs", classes="title")
                yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
                yield Plain("No runs yet. Press n to fine-tune your first model:\n"
                             "the built-in SmolLM2-135M and a sample dataset work offline.", id="runs-empty")
                yield Plain("", id="run-cause", classes="error")
        with Horizontal(classes="buttons"):
            yield Button("New fine-tune", id="new", variant="primary", compact=True)
            yield Button("Open run", id="open", compact=True)
        yield KeyFooter()

    def __init__(self) -> None:
        super().__init__()
        self._histories: dict[RunDir, RunHistory] = {}
        """Each listed run's events, folded; a refresh reads only the lines appended since the last."""
        self._trained: dict[RunDir, tuple[str, str]] = {}
        """Each listed run's model and method, read once from its config.yaml."""
        self.marked: set[RunDir] = set()
        """Runs marked (space) for Compare."""

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_columns("run", "model", "method", "state", "step", "loss", "eval")
        self.query_one("#run-cause").display = False
        self.watch(self.app, "hardware", self._show_hardware)
        self.refresh_runs()
        self.set_interval(REFRESH_SECONDS, self.refresh_runs)
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        """The runs table has the keys when there are runs: arrows pick one, Enter opens it, space marks it."""
        table = self.query_one("#runs", DataTable)
        if table.row_count:
            table.focus()

    def _show_hardware(self, hardware: Hardware | None) -> None:
        self.query_one("#hardware", Static).update(hardware_text(hardware))

    def refresh_runs(self) -> None:
        """Re-list the run directories and fold in their new events (cheap: a few small reads each)."""
        from rich.text import Text

        self.tuneforge.session.reap_children()
        table = self.query_one("#runs", DataTable)
        runs = list_runs()
        selected = table.cursor_row
        table.clear()
        self._histories = {run: self._histories.get(run) or RunHistory(run.events_file) for run in runs}
        for run, history in self._histories.items():
            history.refresh()
            state, last = run.state(history), history.last_step
            if run not in self._trained:
                self._trained[run] = what_it_trains(run)
            table.add_row(*plain_cells(f"✓ {run.name}" if run in self.marked else run.name, *self._trained[run], Text(state, style=STATE_STYLE.get(state, "")),
                                       f"{last.step}/{last.max_steps}" if last else "", _figure(last.loss if last else None),
                                       _figure(history.last_eval_loss)), key=str(run.path))
        if runs:
            table.move_cursor(row=min(selected, len(runs) - 1))
        table.display = bool(runs)
        self.query_one("#runs-empty").display = not runs
        self.query_one("#open", Button).disabled = not runs

    def action_new(self) -> None:
        self.tuneforge.new_finetune()

    def action_open(self) -> None:
        run = self._highlighted_run()
        if run is not None:
            self.tuneforge.open_run(run)

    def _highlighted_run(self) -> RunDir | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        return self._run_at(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_mark(self) -> None:
        """Mark the highlighted run for Compare, or unmark it."""
        run = self._highlighted_run()
        if run is not None:
            self.marked ^= {run}
            self.refresh_runs()

    def action_compare(self) -> None:
        """The marked runs side by side; with none marked, every finished run."""
        from .compare import CompareScreen

        chosen = self.marked or set(self._histories)
        finished = [run for run, history in self._histories.items()
                    if run in chosen and history.finished is not None and history.finished.result is not None]
        if not finished:
            self.notify("No finished run to compare: mark runs with space once they trained.", severity="warning")
            return
        self.app.push_screen(CompareScreen(finished))

    def action_chat_file(self) -> None:
        """Chat with a GGUF: a run's verified file, picked from a list, or any other .gguf."""
        from pathlib import Path

        from tuneforge.exporters.report import passed_files

        from ..widgets.pickers import GgufPicker, PathPicker

        def chosen(path: Path | None) -> None:
            if path is None:
                return
            if path.suffix.lower() != ".gguf":
                self.notify(f"{path.name} is not a .gguf file", severity="error", markup=False)
                return
            self.tuneforge.open_chat(path)

        files = [(run.name, path) for run in self._histories for path in passed_files(run.export, models_only=True)]
        picker = GgufPicker(files) if files else PathPicker("Chat with a GGUF file", Path.cwd(), folders=False)
        self.app.push_screen(picker, chosen)

    @on(DataTable.RowHighlighted, "#runs")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Under the table: why the highlighted run failed, stopped or could not be exported."""
        run = self._run_at(event.row_key.value)
        cause = cause_text(run, self._histories.get(run)) if run else ""
        line = self.query_one("#run-cause", Static)
        line.update(cause)
        line.display = bool(cause)

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        run = self._run_at(event.row_key.value)
        if run is not None:
            self.tuneforge.open_run(run)

    @staticmethod
    def _run_at(key: str | None) -> RunDir | None:
        """The run a row of the table stands for (its key is the run's path)."""
        from pathlib import Path

        return RunDir(Path(key)) if key else None

    @on(Button.Pressed, "#new")
    def _new_pressed(self) -> None:
        self.action_new()

    @on(Button.Pressed, "#open")
    def _open_pressed(self) -> None:
        self.action_open()


def cause_text(run: RunDir, history: RunHistory | None = None) -> str:
    """Why `run` failed, stopped or could not be exported, in a line or two; empty for any other state."""
    from tuneforge.core.diagnosis import failure_cause

    history = history or run.history()
    state = run.state(history)
    if state in ("failed", "stopped"):
        message, hint = failure_cause(run, history=history)
        return f"{state}: {message.splitlines()[0]}" + (f"\nhint: {in_app_words(hint)}" if hint else "")
    if state == "export failed":
        return f"export failed: {run.last_export_failure(history)}"
    return ""


def _figure(value: float | None) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else ""
