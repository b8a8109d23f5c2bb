"""Model: the catalog as a searchable, filterable table with a fit badge per model, or a local folder / GGUF."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Header, Input, Select, Static

from tuneforge.core.catalog import DEFAULT_MODEL, DEFAULT_MODEL_SPEC, ModelSpec, all_models
from tuneforge.core.errors import TuneforgeError
from tuneforge.core.fit import catalog_plan, model_fit
from tuneforge.core.hardware import Hardware, resolve_method
from tuneforge.exporters.gguf.types import export_refusal

from ..base import TuneforgeScreen
from ..errors import in_app_words
from ..widgets import KeyFooter, Plain, plain_cells

SIZES = (("any size", "any"), ("under 1B", "small"), ("1–4B", "medium"), ("7B and up", "large"))
FIT_BADGES = {"yes": Text("✓ fits", style="bold green"), "tight": Text("! tight", style="yellow"),
              "slow": Text("~ slow", style="yellow"), "no": Text("✗ too big", style="red")}


def size_class(spec: ModelSpec) -> str:
    """small, medium or large, as the size filter groups models."""
    if spec.params_b < 1:
        return "small"
    return "medium" if spec.params_b < 5 else "large"  # Qwen3-4B has 4.02 B parameters and is a "4B" model


def matches(spec: ModelSpec, query: str, size: str, family: str) -> bool:
    """Whether a catalog entry passes the search text and the two filters."""
    text = f"{spec.name} {spec.family} {spec.hub_id} {spec.arch}".lower()
    return (all(word in text for word in query.lower().split())
            and size in ("any", size_class(spec)) and family in ("any", spec.family))


def model_note(name: str, spec: ModelSpec, hardware: Hardware | None = None) -> str:
    """Licence, gating and where the weights come from, for the highlighted model, then the memory its training is
    planned to need here (the badge's reason)."""
    if name == DEFAULT_MODEL:
        return (f"Built in: {spec.hub_id}, shipped with tuneforge, works offline. "
                f"{spec.size_label} parameters, licence {spec.license}. Best for a first run." + plan_line(spec, hardware))
    note = f"{spec.hub_id} · licence {spec.license} · {spec.context:,} tokens of context. "
    if spec.gated:
        note += "Gated: accept its licence on the hub and log in (`hf auth login`) before the first download. "
    if export_refusal(spec.architecture):
        note += f"Trains and merges, but does not export to GGUF ({spec.architecture}). "
    return note + "Downloaded from the hub on first use, then cached." + plan_line(spec, hardware)


def plan_line(spec: ModelSpec, hardware: Hardware | None) -> str:
    """The planned training memory on this machine with the default settings, as the note's last line."""
    if hardware is None:
        return ""
    fit = catalog_plan(spec, hardware)
    plan = fit.plan
    return (f"\nTraining on examples of {fit.max_length} tokens is planned at {plan.total_gb:.1f} of "
            f"{plan.budget_gb:.1f} GB free here ({plan.verdict}; {resolve_method('auto', hardware)}, batch {fit.batch_size}).")


class ModelScreen(TuneforgeScreen):
    """Step 1: pick the base model."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("slash", "focus_search", "Search"),
        Binding("ctrl+o", "browse", "Local model…"),
    ]

    def compose(self) -> ComposeResult:
        families = sorted({spec.family for spec in all_models()})
        yield Header()
        yield Plain("Step 1 of 4 · Pick a base model (Enter) · ✓ fits  ! tight  ~ slow  ✗ too big", classes="step")
        with Horizontal(id="filters"):
            yield Input(placeholder="search name, family, hub id", id="search", compact=True)
            yield Select(SIZES, value="any", allow_blank=False, id="size", compact=True)
            yield Select([("any family", "any"), *((f, f) for f in families)], value="any", allow_blank=False, id="family", compact=True)
        yield DataTable(id="catalog", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="model-note")
        with Horizontal(id="local-model"):
            yield Input(placeholder="…or a local HF model folder or .gguf file", id="model-path", compact=True)
            yield Button("Browse…", id="browse", compact=True)
            yield Button("Use", id="use-path", compact=True)
        yield Plain("", id="path-error", classes="error")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#catalog", DataTable)
        table.add_columns("model", "size", "family", "context", "licence", "fit")
        self.watch(self.app, "hardware", lambda _: self.fill_table())
        table.focus()

    def fill_table(self) -> None:
        """Show the catalog entries that pass the search and filters, with fit badges."""
        table = self.query_one("#catalog", DataTable)
        query = self.query_one("#search", Input).value
        size, family = self.query_one("#size", Select).value, self.query_one("#family", Select).value
        hardware: Hardware | None = self.tuneforge.hardware
        table.clear()
        entries = [(DEFAULT_MODEL, DEFAULT_MODEL_SPEC)] + [(spec.name, spec) for spec in all_models()]
        for name, spec in entries:
            if not matches(spec, query, size, family):
                continue
            fit = FIT_BADGES[model_fit(spec, hardware)] if hardware else Text("…", style="dim")
            label = f"{name} (built in)" if name == DEFAULT_MODEL else name
            licence = f"{spec.license} (gated)" if spec.gated else spec.license
            table.add_row(*plain_cells(label, spec.size_label, spec.family, f"{spec.context // 1024}k", licence, fit), key=name)
        if not table.row_count:
            self.query_one("#model-note", Static).update("No model matches; clear the search or the filters.")

    @on(Input.Changed, "#search")
    @on(Select.Changed)
    def _filters_changed(self) -> None:
        self.fill_table()

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        self.query_one("#catalog", DataTable).focus()

    def on_key(self, event: events.Key) -> None:
        """Down in the search field goes to the list, so that the next Enter picks (the field has no use for Down,
        and before, Enter there only moved to the list: two Enters to pick)."""
        if event.key == "down" and self.focused is self.query_one("#search", Input):
            event.stop()
            self.query_one("#catalog", DataTable).focus()

    @on(DataTable.RowHighlighted, "#catalog")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        name = event.row_key.value
        if name is None:
            return
        spec = DEFAULT_MODEL_SPEC if name == DEFAULT_MODEL else next(s for s in all_models() if s.name == name)
        self.query_one("#model-note", Static).update(model_note(name, spec, self.tuneforge.hardware))

    @on(DataTable.RowSelected, "#catalog")
    def _selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.choose(event.row_key.value)

    @on(Button.Pressed, "#use-path")
    @on(Input.Submitted, "#model-path")
    def _use_path(self) -> None:
        from tuneforge.core.api.models import check_model_reference

        reference = self.query_one("#model-path", Input).value.strip()
        error = self.query_one("#path-error", Static)
        if not reference:
            error.update("type a folder or .gguf path, or press Browse…")
            return
        try:
            kind = check_model_reference(reference)
        except TuneforgeError as exc:
            error.update(f"{exc.message}. {in_app_words(exc.hint)}")
            return
        if kind == "folder" and not (Path(reference).expanduser() / "config.json").is_file():
            error.update(f"{reference}: not a Hugging Face model folder (no config.json)")
            return
        error.update("")
        self.choose(str(Path(reference).expanduser().resolve()) if kind in ("folder", "gguf") else reference)

    @on(Button.Pressed, "#browse")
    def action_browse(self) -> None:
        from ..widgets.pickers import browse_into

        browse_into(self.query_one("#model-path", Input), "A model folder (with config.json) or a .gguf file", self._use_path)

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def choose(self, reference: str) -> None:
        """Remember the model and go on to the data."""
        from .data import DataScreen

        session = self.tuneforge.session
        if session.model != reference:
            session.report = None
        session.model = reference
        self.app.push_screen(DataScreen())
