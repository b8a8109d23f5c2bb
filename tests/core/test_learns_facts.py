"""End to end on the real default model: it learns the shipped facts it could not know before."""

from __future__ import annotations

import pytest

from tuneforge.core.general_answers import RESULT_FILE, read_answers
from tuneforge.core.runs import RunDir


@pytest.mark.slow
def test_default_model_learns_the_planted_facts(demo_run):
    result = demo_run
    answers = result.facts

    assert len(answers) == 12
    assert not any(a.known_before for a in answers), [a.before for a in answers if a.known_before]
    learned = [a for a in answers if a.known_after]
    # Greedy answers after fine-tuning contain the planted fact; allow one miss for the
    # 135M model's rounding noise, never more.
    assert len(learned) >= len(answers) - 1, [(a.question, a.after) for a in answers if not a.known_after]
    # ...and it still knows what it knew: replay (on by default for a dataset this small) keeps at least 80 % of the
    # everyday answers the base got right (measured: 64 of 71 on an Intel Xeon, 56 of 68 on an AMD EPYC, whose bf16
    # answers differ; bench/defaults.py 87-93 % on other facts; the aim is 95 %, not met yet).
    trained = RunDir(result.run_dir).history().finished.result
    assert trained.replay_examples > 0
    assert trained.general_kept >= 0.8 * trained.general_known, read_answers(result.run_dir / RESULT_FILE).lost
    # The q8_0 file answering through llama.cpp keeps what the trained model kept, give or take the few greedy answers
    # its rounding flips (AMD EPYC: 54 against 56), counted against the same right answers of the base: those its run
    # recorded before training.
    assert result.kept.known == trained.general_known
    assert result.kept.kept >= trained.general_kept - 4, result.kept.lost
