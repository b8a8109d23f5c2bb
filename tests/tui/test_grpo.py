"""GRPO in the app: the Train form's rewards (checked as typed), the settings only some methods use, and a run's reward and KL charts and sampled answers."""

from __future__ import annotations

from textual.widgets import Button, Input, Select

from tuneforge.core.config import RunConfig
from tuneforge.core.events import Finished, Launched, Sampled, Started, Step, TrainResult
from tuneforge.core.runs import new_run
from tuneforge.tui.app import TuneforgeApp
from tuneforge.tui.screens.run import CHARTS, RunScreen
from tuneforge.tui.screens.train import TrainFormScreen

from .pilot import CPU_MACHINE, SIZE, text_of


def app_with_choices(model, data) -> TuneforgeApp:
    """The app with a model and data chosen, as it reaches the Train form."""
    app = TuneforgeApp(hardware=CPU_MACHINE)
    app.session.model, app.session.data, app.session.eval_split = str(model), str(data), 0.0
    return app


async def test_the_form_offers_rewards_for_grpo_and_says_what_is_wrong_with_one(home, tiny_llama, facts_file):
    app = app_with_choices(tiny_llama, facts_file)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(TrainFormScreen())
        form = app.screen
        assert not form.query_one("#row-rewards").display and not form.query_one("#row-teacher").display
        form.query_one("#field-method", Select).value = "grpo"
        await pilot.pause()
        assert all(form.query_one(f"#row-{name}").display for name in ("rewards", "num_generations", "sample_temperature"))
        assert "GRPO" in text_of(app, "#help-method")
        form.query_one("#field-rewards", Input).value = "numeric:0.5; length:60-5"
        await pilot.pause()
        assert "MIN-MAX" in text_of(app, "#help-rewards")  # the second reward's problem, under the field
        form.query_one("#field-rewards", Input).value = r"numeric:0.5; 0.5*regex:^\d+$"
        await pilot.pause()
        values = form.values()
        assert values["rewards"] == ["numeric:0.5", r"0.5*regex:^\d+$"] and values["num_generations"] == 4
        config = RunConfig.from_dict(values)
        assert [reward.written() for reward in config.rewards] == ["numeric:0.5", r"0.5*regex:^\d+$"]


async def test_rewards_are_picked_from_the_list_of_kinds_with_their_weights_and_a_wrong_one_is_not_added(home, tiny_llama, facts_file):
    from textual.widgets import OptionList

    from tuneforge.tui.widgets.reward_editor import RewardEditor

    app = app_with_choices(tiny_llama, facts_file)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(TrainFormScreen())
        form = app.screen
        form.query_one("#field-method", Select).value = "grpo"
        await pilot.pause()
        form.query_one("#edit-rewards", Button).press()
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, RewardEditor)
        assert [reward.written() for reward in editor.rewards] == ["contains", "ends_turn"]  # an empty field: the defaults
        assert "reference" in text_of(app, "#reward-help")  # contains compares with each record's answer: where that comes from
        editor.query_one("#reward-kind", Select).value = "length"
        await pilot.pause()
        assert "MIN-MAX" in editor.query_one("#reward-argument", Input).placeholder
        editor.query_one("#reward-argument", Input).value = "60-5"
        editor.query_one("#reward-weight", Input).value = "0.5"
        editor.query_one("#reward-add", Button).press()
        await pilot.pause()
        assert "MIN-MAX" in text_of(app, "#reward-error") and len(editor.rewards) == 2  # not added
        editor.query_one("#reward-argument", Input).value = "5-60"
        editor.query_one("#reward-add", Button).press()
        await pilot.pause()
        assert editor.rewards[-1].written() == "0.5*length:5-60" and text_of(app, "#reward-error") == ""
        editor.query_one("#reward-list", OptionList).highlighted = 1
        editor.query_one("#reward-remove", Button).press()  # ends_turn
        editor.query_one("#reward-done", Button).press()
        await pilot.pause()
        assert app.screen is form
        assert form.query_one("#field-rewards", Input).value == "contains; 0.5*length:5-60"
        assert [reward.written() for reward in RunConfig.from_dict(form.values()).rewards] == ["contains", "0.5*length:5-60"]


async def test_a_4bit_base_is_offered_for_the_lora_methods_and_a_hidden_setting_is_not_sent(home, tiny_llama, facts_file):
    app = app_with_choices(tiny_llama, facts_file)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(TrainFormScreen())
        form = app.screen
        shown = {}
        for method in ("lora", "qlora", "full", "dora", "dpo", "grpo"):
            form.query_one("#field-method", Select).value = method
            await pilot.pause()
            shown[method] = form.query_one("#row-load_in_4bit").display
        assert shown == {"lora": False, "qlora": False, "full": False, "dora": True, "dpo": True, "grpo": True}
        form.query_one("#field-load_in_4bit", Select).value = True
        form.query_one("#field-rewards", Input).value = "contains"
        await pilot.pause()
        assert form.values()["load_in_4bit"] is True and RunConfig.from_dict(form.values()).load_in_4bit
        form.query_one("#field-method", Select).value = "full"  # neither setting applies to full fine-tuning
        await pilot.pause()
        values = form.values()
        assert "load_in_4bit" not in values and "rewards" not in values
        assert RunConfig.from_dict(values).method == "full"


async def test_a_grpo_run_shows_its_reward_and_kl_curves_and_what_it_sampled(home, facts_file):
    run = new_run(RunConfig(data=str(facts_file), method="grpo", rewards=["contains", "ends_turn"]), home / "runs" / "grpo")
    run.record(Launched(pid=1))
    run.record(Started(pid=1, method="grpo", model="default", device="CPU"))
    for step in range(1, 11):
        run.record(Step(step=step, max_steps=10, loss=0.01, lr=1e-5, reward=0.5 + step / 20, kl=0.001 * step,
                        rewards={"contains": step / 10, "ends_turn": 1.0}))
    run.record(Sampled(step=10, prompts=["Who keeps the lighthouse?"] * 2, answers=["Mara Tovesk keeps it.", "Someone."],
                       rewards={"contains": [1.0, 0.0], "ends_turn": [1.0, 1.0]}))
    run.record(Finished(result=TrainResult(10, 0.01, None, 9.0, 50.0, 1, 2, 0.9, 1.0, "grpo")))
    app = TuneforgeApp(hardware=CPU_MACHINE)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(RunScreen(run))
        await pilot.pause()
        samples = text_of(app, "#samples")
        assert "sampled at step 10" in samples and "Mara Tovesk keeps it." in samples and "contains 1, ends_turn 1" in samples
        shown = []
        for _ in range(5):
            shown.append(CHARTS[app.screen.chart][0])
            await pilot.press("g")
        # the gradient norm is skipped: no step logged one
        assert shown == ["loss", "reward", "KL to the base", "learning rate", "loss"]
