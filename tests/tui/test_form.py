"""The Train form accepts exactly what RunConfig accepts, field by field (its bounds are read from RunConfig)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tuneforge.core.config import RunConfig
from tuneforge.tui.screens.train import FIELDS, GPU_FIELD, WithinBounds, field_help

NUMBER_FIELDS = [field for field in (*FIELDS, GPU_FIELD) if field.kind not in ("choice", "optional-text", "list", "optional-list", "rewards")]
CANDIDATES = ["-1", "0", "1e-8", "0.5", "1", "2", "15", "16", "512"]


@pytest.mark.parametrize("field", NUMBER_FIELDS, ids=lambda field: field.name)
def test_each_number_field_accepts_what_run_config_accepts(field):
    for text in CANDIDATES:
        form_says = WithinBounds(field).validate(text).is_valid
        try:
            value = int(text) if "int" in field.kind else float(text)
        except ValueError:
            assert not form_says, (field.name, text)
            continue
        try:
            RunConfig(data="x.jsonl", **{field.name: value})
            config_says = True
        except ValidationError:
            config_says = False
        assert form_says == config_says, (field.name, text, form_says)


def test_a_value_out_of_bounds_is_explained_with_the_bounds():
    eval_split = next(field for field in FIELDS if field.name == "eval_split")
    result = WithinBounds(eval_split).validate("1")
    assert not result.is_valid and result.failure_descriptions == ["eval split must be ≥ 0 and < 1"]


async def test_the_form_says_before_training_when_the_model_will_not_export(home, tmp_path, default_model, tiny_llama, facts_file):
    from tests.conftest import build_tiny_model
    from tuneforge.tui.app import TuneforgeApp
    from tuneforge.tui.screens.train import TrainFormScreen

    from .pilot import CPU_MACHINE, SIZE, text_of

    helium = build_tiny_model("helium", default_model, tmp_path / "tiny-helium")
    for model, warned in ((helium, True), (tiny_llama, False)):
        app = TuneforgeApp(hardware=CPU_MACHINE)
        app.session.model, app.session.data = str(model), str(facts_file)
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(TrainFormScreen())
            await pilot.pause()
            note = app.screen.query_one("#export-note")
            assert note.display == warned
            if warned:
                assert "does not know the 'HeliumForCausalLM' architecture" in text_of(app, "#export-note")


async def test_every_help_line_reads_as_written(home, tiny_llama, facts_file):
    """Help texts hold square brackets (Mistral's [INST]) that markup would swallow."""
    from tuneforge.tui.app import TuneforgeApp
    from tuneforge.tui.screens.train import TrainFormScreen

    from .pilot import CPU_MACHINE, SIZE, text_of

    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model, app.session.data = str(tiny_llama), str(facts_file)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(TrainFormScreen())
        await pilot.pause()
        shown = {field.name: text_of(app, f"#help-{field.name}") for field in FIELDS}
    assert "[INST]" in shown["chat_template"]
    assert "empty = 6" in shown["epochs"] and not any("None" in text for text in shown.values())  # the form's words
    for name, text in shown.items():
        assert text.startswith(field_help(name)), name


def test_doctor_and_the_train_form_plan_the_first_run_alike(home):
    """doctor's headroom line and the form's plan are one plan: the default model on the sample data."""
    import re

    from tuneforge.core.api.data import check_data
    from tuneforge.core.demo import DEMO_DATA, demo_file
    from tuneforge.core.doctor import run_checks
    from tuneforge.core.hardware import detect
    from tuneforge.core.memory import model_shape
    from tuneforge.core.paths import tuneforge_home
    from tuneforge.tui.screens.train import default_values, estimate_for

    headroom = next(check for check in run_checks() if check.name == "headroom")
    doctor_gb = float(re.search(r"training ([\d.]+) of", headroom.detail).group(1))
    stats = check_data(str(demo_file(DEMO_DATA)), "default", 512, None).stats
    form = estimate_for(default_values("default", 512, None), model_shape("default"), stats.length_summary()["max"],
                        detect(tuneforge_home()), stats.answer_share, stats.train_examples)
    assert "sample data" in headroom.detail and doctor_gb == round(form.fit.plan.total_gb, 1)


async def test_the_form_sets_what_config_yaml_holds(home, tiny_llama, facts_file):
    """Dropout, targets, schedule, warmup, weight decay, eval and save intervals and the seed are set in the form
    (they were config-only) and come back from the run's config.yaml as set."""
    from textual.widgets import Input, Select

    from tuneforge.core.runs import new_run
    from tuneforge.tui.app import TuneforgeApp
    from tuneforge.tui.screens.train import TrainFormScreen

    from .pilot import CPU_MACHINE, SIZE

    wanted = {"lora_dropout": 0.1, "lora_targets": ["q_proj", "v_proj"], "lr_scheduler": "linear", "warmup_ratio": 0.1,
              "weight_decay": 0.01, "eval_steps": 5, "save_steps": 10, "seed": 7, "report_to": ["tensorboard"]}
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model, app.session.data = str(tiny_llama), str(facts_file)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(TrainFormScreen())
        await pilot.pause()
        for name, value in wanted.items():
            widget = app.screen.query_one(f"#field-{name}")
            if isinstance(widget, Select):
                widget.value = value
            else:
                app.screen.query_one(f"#field-{name}", Input).value = ", ".join(value) if isinstance(value, list) else str(value)
        await pilot.pause()
        values = app.screen.values()
    run = new_run(RunConfig.from_dict(values, source="the form"), home / "runs" / "set")
    saved = run.load_config()
    assert {name: getattr(saved, name) for name in wanted} == wanted
