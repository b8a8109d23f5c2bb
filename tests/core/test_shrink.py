"""`tuneforge shrink` on a finished run, as a person runs it: a tiny 4-layer model shrunk to 2 layers in
two stages, stopped with Ctrl-C mid-stage and resumed from the checkpoint; each stage is a run
directory whose model was healed towards its teacher, and the smallest exports to a GGUF that
llama.cpp computes as transformers does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from tuneforge.core.api import export as export_api
from tuneforge.core.api import runs as runs_api
from tuneforge.core.api.runs import create_run
from tuneforge.core.events import CheckpointSaved, Started
from tuneforge.core.shrink.job import create_shrink, plan_shrink
from tuneforge.core.shrink.layers import SCORES_FILE, least_influential
from tuneforge.core.train import train_run

from ..conftest import build_tiny_model
from .events import wait_for

pytestmark = pytest.mark.process  # each stage heals in a training child

HEALING = {"learning_rate": 5e-3, "lora_r": 8, "lora_alpha": 16}


@pytest.fixture()
def trained_four_layers(home, tiny_config, default_model, tmp_path) -> Path:
    """A finished, merged run of a 4-layer random Llama on the facts."""
    model = build_tiny_model("llama", default_model, tmp_path / "llama4", layers=4)
    run = create_run(tiny_config(model=str(model), epochs=4), home / "source")
    train_run(run, echo=None)
    runs_api.merge(run.path)
    return run.path


def healing_loss(student_folder: Path, teacher_folder: Path, data: Path, weight: float, temperature: float) -> float:
    """The distillation loss over the answer tokens of the data, as healing weighs it: KL(teacher ‖ student) at the
    run's temperature and the answers' cross-entropy."""
    import torch
    from transformers import AutoModelForCausalLM

    from tuneforge.core.data.formats import load_examples
    from tuneforge.core.data.prepare import DataRecipe, prepare
    from tuneforge.core.train.distill import distillation_terms
    from tuneforge.core.train.setup import load_tokenizer

    tokenizer = load_tokenizer(teacher_folder)
    examples = prepare(load_examples(str(data)), tokenizer, DataRecipe(512, 0.0)).train
    student, teacher = (AutoModelForCausalLM.from_pretrained(f, dtype=torch.float32).eval() for f in (student_folder, teacher_folder))
    total = 0.0
    with torch.no_grad():
        for example in examples:
            ids, labels = torch.tensor([example.input_ids]), torch.tensor([example.labels])
            kl, cross_entropy, _ = distillation_terms(student(ids).logits[:, :-1], teacher(ids).logits[:, :-1], labels[:, 1:], temperature)
            total += float(weight * kl + (1 - weight) * cross_entropy)
    return total / len(examples)


def test_a_run_shrinks_in_stages_resumes_after_ctrl_c_and_each_stage_heals_and_exports(trained_four_layers, home, facts_file):
    # Small steps and frequent checkpoints, so a stop lands mid-stage.
    shrink = create_shrink(plan_shrink(str(trained_four_layers), layers=2, max_steps=12,
                                       settings={**HEALING, "save_steps": 2, "batch_size": 1}), home / "shrink")
    assert shrink.plan().layers == [4, 3, 2]
    command = [sys.executable, "-m", "tuneforge.core.cli", "shrink", "--resume", str(shrink.path)]
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = shrink.stage(1)
    try:
        wait_for(first, lambda e: isinstance(e, CheckpointSaved) and e.step >= 2)
        parent.send_signal(signal.SIGINT)  # Ctrl-C in the terminal that runs `tuneforge shrink`
        out, err = parent.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 130, err
    assert "Traceback" not in err
    assert f"hint: continue with `tuneforge shrink --resume {shrink.path}`" in err
    assert shrink.state() == "stopped"
    checkpoint = first.last_checkpoint()
    assert checkpoint is not None and not (first.adapter / "adapter_config.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert [e for e in first.history().events if isinstance(e, Started)][-1].resume_from == str(checkpoint)
    assert shrink.state() == "finished"
    assert "the smallest model:" in resumed.stdout and f"next: tuneforge export {shrink.stage(2).path}" in resumed.stdout

    stages = shrink.finished_stages()
    assert [(e.stage, e.layers) for e in stages] == [(1, 3), (2, 2)]
    teacher = trained_four_layers / "merged"
    for event in stages:
        run = shrink.stage(event.stage)
        scores = json.loads((run.path / "pruned" / SCORES_FILE).read_text())
        # The removed layer is the lowest-scored of the inner ones, and the event says so.
        assert event.removed == scores["removed"] == least_influential(scores["scores"], 1)
        assert event.removed[0] not in (0, len(scores["scores"]) - 1)
        assert json.loads((run.merged / "config.json").read_text())["num_hidden_layers"] == event.layers
        assert event.steps == 12 and event.accuracy is not None and event.accuracy_of == "training data"
        assert event.perplexity is not None
        # Healing brought the smaller model back towards the one it was cut from and its data, by the loss it weighs
        # them with (the KL alone need not fall: a 2-core AMD EPYC's first stage went 0.620 → 0.627 while the answers'
        # cross-entropy fell 10.4 → 8.4, the loss 5.52 → 4.53).
        config = run.load_config()
        healing = partial(healing_loss, teacher_folder=teacher, data=facts_file, weight=config.distill_weight,
                          temperature=config.distill_temperature)
        assert healing(run.merged) < healing(run.path / "pruned")
        teacher = run.merged
    assert stages[1].parameters < stages[0].parameters

    # The smallest model is a run like any other: it exports to a GGUF that llama.cpp computes as
    # transformers does (a random model's chat need not stop, so that check is not asked of it).
    exported = export_api.export(shrink.stage(2).path, ["f16"], echo=None)
    checks = {check.name: check for check in exported.verifications[0].checks}
    for name in ("loads", "tokenizer", "logits", "perplexity"):
        assert checks[name].passed, (name, checks[name].detail)
