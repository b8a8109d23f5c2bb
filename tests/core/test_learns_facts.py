"""End to end on the real default model: it learns the shipped facts it could not know before."""

from __future__ import annotations

import pytest

from tuneforge.core.demo import run_demo


@pytest.mark.slow
def test_default_model_learns_the_planted_facts(home, default_model, tmp_path):
    result = run_demo(tmp_path / "demo", echo=None)
    answers = result.facts

    assert len(answers) == 12
    assert not any(a.known_before for a in answers), [a.before for a in answers if a.known_before]
    learned = [a for a in answers if a.known_after]
    # Greedy answers after fine-tuning contain the planted fact; allow one miss for the
    # 135M model's rounding noise, never more.
    assert len(learned) >= len(answers) - 1, [(a.question, a.after) for a in answers if not a.known_after]
    # ...and it still knows what it knew: no catastrophic forgetting on the control questions.
    assert all(a.known_before and a.known_after for a in result.controls), [(a.before, a.after) for a in result.controls]
