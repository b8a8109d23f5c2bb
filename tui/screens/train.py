"""Train: the run's settings as a form with one explanation per field, a live memory estimate, and Start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Header, Input, Label, Select, Static
from textual.worker import Worker

from tuneforge.core.accelerate_setup import describe_launch
from tuneforge.core.chat_templates import CHOICES as CHAT_TEMPLATE_CHOICES
from tuneforge.core.config import RunConfig, setting_bounds
from tuneforge.core.errors import ConfigError
from tuneforge.core.hardware import Hardware
from tuneforge.core.memory import model_shape
from tuneforge.core.methods import METHODS, MethodSpec, auto_method
from tuneforge.core.settle import DataFacts, SettledRun, settle_run

from ..base import TuneforgeScreen
from ..widgets import KeyFooter, Plain
from ..widgets.reward_editor import RewardEditor
from .job_view import JobStarted


@dataclass(frozen=True)
class Field:
    """One form field: a RunConfig setting, its label, and how its text becomes a value."""

    name: str
    label: str
    kind: str  # "int", "float", "optional-int", "optional-float", "optional-text", "list", "optional-list" or "choice"
    choices: tuple[tuple[str, Any], ...] = ()


REWARDS_FIELD = Field("rewards", "rewards", "rewards")
"""grpo's rewards: typed `;`-separated, or picked in the RewardEditor."""
FIELDS = (
    Field("method", "method", "choice", tuple((name, name) for name in METHODS)),
    Field("load_in_4bit", "4-bit base", "choice", (("off", False), ("on", True))),
    Field("epochs", "epochs", "optional-float"),
    Field("learning_rate", "learning rate", "optional-float"),
    Field("batch_size", "batch size", "int"),
    Field("grad_accum", "grad accum", "int"),
    Field("max_length", "max length", "int"),
    Field("lora_r", "LoRA rank", "int"),
    Field("lora_alpha", "LoRA alpha", "int"),
    Field("lora_dropout", "LoRA dropout", "float"),
    Field("lora_targets", "LoRA targets", "optional-list"),
    Field("lr_scheduler", "schedule", "choice", tuple((name, name) for name in get_args(RunConfig.model_fields["lr_scheduler"].annotation))),
    Field("warmup_ratio", "warmup", "float"),
    Field("weight_decay", "weight decay", "float"),
    Field("eval_split", "eval split", "optional-float"),
    Field("early_stopping_patience", "early stop", "optional-int"),
    Field("replay", "replay", "optional-float"),
    Field("max_steps", "max steps", "optional-int"),
    Field("gradient_checkpointing", "checkpointing", "choice", (("auto", None), ("on", True), ("off", False))),
    Field("chat_template", "chat format", "choice", tuple((name, name) for name in CHAT_TEMPLATE_CHOICES)),
    Field("teacher", "teacher", "optional-text"),
    REWARDS_FIELD,
    Field("num_generations", "group size", "int"),
    Field("max_completion_length", "answer tokens", "int"),
    Field("sample_temperature", "temperature", "float"),
    Field("allow_code", "allow code", "choice", (("off", False), ("on", True))),
    Field("eval_steps", "eval every", "optional-int"),
    Field("save_steps", "save every", "optional-int"),
    Field("seed", "seed", "int"),
    Field("report_to", "report to", "list"),
)
ONLY_FOR: dict[str, Callable[[MethodSpec], bool]] = {
    "load_in_4bit": lambda spec: spec.offers_4bit_base,
    "teacher": lambda spec: spec.objective == "distill",
    **dict.fromkeys(("rewards", "num_generations", "max_completion_length", "sample_temperature", "allow_code"),
                    lambda spec: spec.samples_answers),
}
"""Fields that only some methods use, shown (and sent) only while such a method is chosen."""
GPU_FIELD = Field("processes", "GPUs", "int")
"""Offered when the machine has several GPUs: how many this run trains on (through accelerate)."""
PLACEHOLDERS = {
    "learning_rate": "the method's default",
    "epochs": "6 (30 if until recalled)",
    "early_stopping_patience": "auto: on for small data",
    "replay": "auto: 1 for small data, 0 = off",
    "eval_split": "auto: 0 for small data, else 0.1",
    "max_steps": "by epochs",
    "teacher": "distill only: model or run directory",
    "lora_targets": "every linear layer (or: q_proj, v_proj, …)",
    "eval_steps": "once an epoch",
    "save_steps": "once an epoch",
    "report_to": "none (or: tensorboard, trackio, wandb, mlflow)",
    "rewards": "contains; ends_turn (or e.g. numeric:0.01; 0.5*length:5-60; regex:^\\d+$)",
}


def parse_field(field: Field, text: str) -> Any:
    """The value of a text field (None for an empty optional one); ValueError when it is not a number."""
    text = text.strip()
    if field.kind.startswith("optional") and not text:
        return None
    if field.kind == "optional-text":
        return text
    if field.kind in ("list", "optional-list"):  # empty: None for an optional list, [] for a list
        return [part.strip() for part in text.split(",") if part.strip()]
    if field.kind == "rewards":  # `;` between them: a pattern or a schema may hold commas
        return [part.strip() for part in text.split(";") if part.strip()]
    return int(text) if field.kind in ("int", "optional-int") else float(text)


class WithinBounds(Validator):
    """A number field's text parses and lies within the bounds RunConfig sets for its setting."""

    def __init__(self, field: Field) -> None:
        super().__init__()
        self.field = field
        self.bounds = setting_bounds(field.name)

    def validate(self, value: str) -> ValidationResult:
        try:
            parsed = parse_field(self.field, value)
        except ValueError:
            return self.failure(f"{self.field.label}: not a number")
        if parsed is None or self.bounds.admits(parsed):
            return self.success()
        return self.failure(f"{self.field.label} must be {self.bounds.describe()}")


class WrittenRewards(Validator):
    """Each reward of the rewards field is written as core/rewards.py reads it."""

    def validate(self, value: str) -> ValidationResult:
        from tuneforge.core.rewards import Reward

        for written in parse_field(REWARDS_FIELD, value):
            try:
                Reward.parse(written)
            except ConfigError as exc:
                return self.failure(exc.message)
        return self.success()


def field_help(name: str) -> str:
    """A setting's one-line explanation (RunConfig's own), in the form's words: a field left empty is what the
    config calls None."""
    return (RunConfig.model_fields[name].description or "").replace("None = ", "empty = ").replace("None: ", "empty: ")


def default_values(model: str, max_length: int, eval_split: float | None) -> dict[str, Any]:
    """RunConfig's defaults with the session's model, max length and eval split (auto-fit settles the batch)."""
    values: dict[str, Any] = {name: info.get_default(call_default_factory=True) for name, info in RunConfig.model_fields.items()
                              if name != "data"}
    values.update(model=model, max_length=max_length, eval_split=eval_split)
    return values


def estimate_for(values: dict[str, Any], shape: Any, seq_len: int, hardware: Hardware, answer_share: float,
                 train_examples: int | None = None, answers: bool = True) -> SettledRun:
    """What training will settle for the form's current values: auto-fit's choice and its memory plan (with
    replay's examples when the data's size says replay will be on)."""
    config = RunConfig.from_dict({**values, "data": values.get("data") or "form"}, source="the form")
    settled = settle_run(config, hardware, DataFacts([seq_len], answer_share, train_examples, answers=answers), shape)
    assert settled.fit is not None  # the form plans only a model whose dimensions are known
    return settled


def estimate_text(settled: SettledRun) -> Text:
    """The plan's breakdown as the side panel shows it, with what settling will change."""
    assert settled.fit is not None
    estimate = settled.fit.plan
    text = Text(f"Memory plan ({estimate.device})\n\n", style="bold")
    for name, gb in estimate.parts:
        text.append(f"{name:<17}{gb:6.2f} GB\n")
    if estimate.reserve_gb:
        text.append(f"{'CUDA context':<17}{estimate.reserve_gb:6.2f} GB\n")
    style = {"fits": "bold green", "tight": "bold yellow", "too big": "bold red"}[estimate.verdict]
    text.append(f"{'total':<17}{estimate.total_gb:6.2f} GB\n", style="bold")
    text.append(f"of {estimate.budget_gb:.1f} GB free: ")
    text.append(estimate.verdict, style=style)
    for change in settled.changes:
        text.append(f"\nauto-fit: {change}", style="yellow")
    if estimate.verdict != "fits":
        text.append("\nlower the batch size (raise grad accum) or max length", style="yellow")
    return text


def export_note(model: str) -> str:
    """A warning, before training, when the model's architecture will not export to GGUF ("" when it will, or is not known yet)."""
    from tuneforge.core.api.models import known_architecture
    from tuneforge.exporters.gguf.types import export_refusal

    architecture = known_architecture(model)
    refusal = export_refusal(architecture) if architecture else None
    return f"Note: {refusal}." if refusal else ""


class TrainFormScreen(TuneforgeScreen):
    """Step 3: the settings, then Start."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "start", "Start training"),
    ]

    def __init__(self) -> None:
        super().__init__()
        session = self.tuneforge.session
        stats = session.report.stats if session.report else None
        self.seq_len = stats.length_summary()["max"] if stats else session.max_length
        self.answer_share = stats.answer_share if stats else 0.5
        self.train_examples = stats.train_examples if stats else None
        self.answers = DataFacts.measured(stats).answers if stats else True
        self.shape = model_shape(session.model)
        self.defaults = default_values(session.model, session.max_length, session.eval_split)
        hardware = self.tuneforge.hardware
        self.fields = FIELDS + ((GPU_FIELD,) if hardware and hardware.gpu_count > 1 else ())

    def compose(self) -> ComposeResult:
        session = self.tuneforge.session
        yield Header()
        yield Plain(f"Step 3 of 4 · Training settings · {session.model_label} on {Path(session.data or '').name}",
                     classes="step")
        yield Plain(export_note(session.model), id="export-note")
        with Horizontal(id="train-body"):
            with VerticalScroll(id="train-form"):
                for field in self.fields:
                    with Vertical(classes="field", id=f"row-{field.name}"):
                        with Horizontal(classes="field-row"):
                            yield Label(field.label, classes="field-label")
                            yield self._widget(field)
                            if field.kind == "rewards":
                                yield Button("Pick…", id="edit-rewards", compact=True)
                        yield Plain(field_help(field.name), id=f"help-{field.name}", classes="field-help")
            yield Plain("", id="memory")
        yield Plain("", id="form-errors", classes="error")
        with Horizontal(classes="buttons"):
            yield Button("Start training", id="start", variant="success", compact=True)
        yield KeyFooter()

    def _widget(self, field: Field) -> Input | Select:
        value = self.defaults[field.name]
        if field.kind == "choice":
            return Select(field.choices, value=value, allow_blank=False, id=f"field-{field.name}", compact=True)
        text = "" if value is None else ", ".join(value) if isinstance(value, list) else str(value)
        placeholder = PLACEHOLDERS.get(field.name, "")
        validators = ([WrittenRewards()] if field.kind == "rewards" else [] if field.kind in ("optional-text", "list", "optional-list")
                      else [WithinBounds(field)])
        return Input(text, placeholder=placeholder, validators=validators, id=f"field-{field.name}",
                     valid_empty=field.kind.startswith("optional"), compact=True)

    @on(Button.Pressed, "#edit-rewards")
    def edit_rewards(self) -> None:
        """Pick the rewards from the list of kinds (RewardEditor); the field shows them as written."""
        field = self.query_one("#field-rewards", Input)

        def edited(rewards: list[str] | None) -> None:
            if rewards is not None:
                field.value = "; ".join(rewards)

        self.app.push_screen(RewardEditor(parse_field(REWARDS_FIELD, field.value)), edited)

    def on_mount(self) -> None:
        self.query_one("#export-note").display = bool(export_note(self.tuneforge.session.model))
        self.update_estimate()
        self.describe_method(self.defaults["method"])

    def describe_method(self, method: str) -> None:
        """The chosen method's one-line explanation under its field (and what auto means here); the fields of
        another method's settings hidden."""
        for name, used_by in ONLY_FOR.items():
            self.query_one(f"#row-{name}").display = used_by(METHODS[method])
        summary = METHODS[method].summary
        if method == "auto":
            on_gpu = bool(self.tuneforge.hardware and self.tuneforge.hardware.cuda)
            summary = f"{field_help('method')} Here auto = {auto_method(on_gpu)}."
        self.query_one("#help-method", Static).update(summary)

    def values(self) -> dict[str, Any]:
        """The form's values; a ValueError names the first field that is not a number."""
        session = self.tuneforge.session
        values: dict[str, Any] = {"model": session.model, "data": session.data, "eval_data": session.eval_data}
        method = METHODS[str(self.query_one("#field-method", Select).value)]
        for field in self.fields:
            if field.name in ONLY_FOR and not ONLY_FOR[field.name](method):
                continue  # a hidden setting of another method keeps its default
            widget = self.query_one(f"#field-{field.name}")
            if isinstance(widget, Select):
                values[field.name] = widget.value
            else:
                try:
                    values[field.name] = parse_field(field, widget.value)
                except ValueError:
                    raise ValueError(f"{field.label}: not a number") from None
        return values

    @on(Input.Changed)
    @on(Select.Changed)
    def update_estimate(self, event: Input.Changed | Select.Changed | None = None) -> None:
        """Per-field validation messages, and the memory estimate of the current values."""
        if isinstance(event, Select.Changed) and event.select.id == "field-method":
            self.describe_method(str(event.value))
        if isinstance(event, Input.Changed) and event.input.id:
            name = event.input.id.removeprefix("field-")
            help_line = self.query_one(f"#help-{name}", Static)
            result = event.validation_result
            if result is not None and not result.is_valid:
                help_line.update(Text("; ".join(result.failure_descriptions), style="red"))
            else:
                help_line.update(field_help(name))
        memory = self.query_one("#memory", Static)
        if self.shape is None:
            memory.update("Memory estimate\n\nnot available for this model\n(its dimensions are unknown until it is imported)")
            return
        hardware = self.tuneforge.hardware
        if hardware is None:
            memory.update("Memory estimate\n\nwaiting for the hardware probe …")
            return
        try:
            values = self.values()
            text = estimate_text(estimate_for(values, self.shape, self.seq_len, hardware, self.answer_share,
                                                      self.train_examples, self.answers))
            if values.get("processes", 1) > 1:
                text.append(f"\n\nLaunch: {describe_launch(RunConfig.from_dict(values, source='the form'), hardware)}", style="dim")
            memory.update(text)
        except (ValueError, ConfigError) as exc:
            memory.update(Text(f"Memory estimate\n\n{exc}", style="red"))

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        """Validate everything at once, then create the run and launch its training child."""
        errors = self.query_one("#form-errors", Static)
        try:
            config = RunConfig.from_dict(self.values(), source="settings")
        except (ValueError, ConfigError) as exc:
            errors.update(getattr(exc, "message", str(exc)))
            self.notify("Some settings need fixing; see below the form.", severity="error")
            return
        errors.update("")
        self.query_one("#start", Button).disabled = True
        self.notify("Creating the run and starting training …")
        self.start(config)

    @work(thread=True, exclusive=True, exit_on_error=False, group="start")
    def start(self, config: RunConfig) -> None:
        """Create the run and launch its training child in this worker; its view opens (a refusal is shown with its hint)."""
        from tuneforge.core.api.runs import create_run, start

        run = create_run(config)
        self.post_message(JobStarted(run, start(run)))

    def worker_failed(self, worker: Worker) -> None:
        self.query_one("#start", Button).disabled = False

    def on_job_started(self, message: JobStarted) -> None:
        self.tuneforge.follow_job(message.job, message.child)
