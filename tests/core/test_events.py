"""events.jsonl: every kind written and read back as itself, folded once, read incrementally, robust to other versions."""

from __future__ import annotations

import json

import pytest

from tuneforge.core.events import (
    KINDS,
    CheckpointSaved,
    Downloading,
    Evaluated,
    Exported,
    Failed,
    Finished,
    Launched,
    Merged,
    Planned,
    Recalled,
    RunHistory,
    Sampled,
    Shrunk,
    Started,
    Step,
    Stopped,
    TrainResult,
    Warned,
    append_event,
)

RESULT = TrainResult(steps=30, final_loss=0.5, eval_loss=0.7, runtime_s=12.0, tokens_per_second=100.0, trainable_params=4_900_000,
                     total_params=134_500_000, peak_memory_gb=2.5, planned_peak_gb=2.4, method="lora")
ONE_OF_EACH = [
    Launched(pid=11, oom_kills=3, command=["python", "-m", "tuneforge.core.train", "RUN"]),
    Started(pid=12, oom_kills=3, method="lora", model="default", device="cpu", resume_from=None),
    Planned(device="cpu", parts={"base weights": 0.5, "activations": 1.0}, peak_gb=1.9, reserve_gb=0.0, budget_gb=20.0,
            verdict="fits", batch_size=4, grad_accum=2, max_length=256, gradient_checkpointing=False,
            changes=["batch_size 8 → 4 with grad_accum 2 (effective batch 8)"], allocator="glibc"),
    Downloading(model="org/model", done_bytes=2**20, total_bytes=2**30),
    Step(step=1, max_steps=30, epoch=0.2, loss=2.5, lr=1e-3, grad_norm=1.5, tokens_per_second=120.0, memory_gb=1.8),
    Step(step=2, max_steps=30, epoch=0.4, loss=0.1, reward=0.75, rewards={"contains": 0.5, "ends_turn": 1.0}, kl=0.01),
    Sampled(step=2, prompts=["Who keeps it?"], answers=["Mara Tovesk."], rewards={"contains": [1.0], "numeric": [None]}),
    Evaluated(step=1, eval_loss=2.4),
    Recalled(step=1, recalled=20, checked=24),
    CheckpointSaved(step=1, path="/runs/x/checkpoints/checkpoint-1"),
    Warned(error="eval loss rose", hint="lower epochs", step=1),
    Stopped(error="training stopped at step 1; checkpoint saved", hint="continue with --resume"),
    Failed(error="killed", hint="resume", returncode=-9),
    Finished(result=RESULT),
    Merged(path="/runs/x/merged", dtype="bfloat16"),
    Exported(files=["/runs/x/export/x-q8_0.gguf"], passed=False, error="x-q8_0.gguf: llama.cpp crashed"),
    Shrunk(stage=1, layers=27, removed=[20, 23, 25], scores=[0.3, 0.02, 0.01], parameters=125_000_000, steps=15, eval_loss=1.1,
           accuracy=0.75, accuracy_of="eval split", perplexity=19.5, model="/runs/s/stage-1/merged"),
]


def test_every_kind_reads_back_as_it_was_written(tmp_path):
    assert {event.kind for event in ONE_OF_EACH} == set(KINDS)
    events_file = tmp_path / "events.jsonl"
    written = [append_event(events_file, event) for event in ONE_OF_EACH]
    read = RunHistory.read(events_file).events
    assert read == written
    assert all(event.time > 0 for event in read)
    # The line format is the run-directory contract: flat fields beside "time" and "event".
    finished = json.loads(events_file.read_text().splitlines()[ONE_OF_EACH.index(Finished(result=RESULT))])
    assert finished["event"] == "finished" and finished["final_loss"] == 0.5 and "result" not in finished


def test_the_history_folds_what_readers_show(tmp_path):
    events_file = tmp_path / "events.jsonl"
    history = RunHistory(events_file)
    for event in (Launched(pid=10), Started(pid=11), Step(step=5, max_steps=10, loss=1.0), Evaluated(step=5, eval_loss=1.2),
                  Step(step=6, max_steps=10, loss=0.9), Stopped()):
        append_event(events_file, event)
    history.refresh()
    assert history.last_step.step == 6 and history.last_eval_loss == 1.2 and len(history.steps) == 2
    assert isinstance(history.lifecycle, Stopped) and history.first_step == 4
    assert history.training_pids == [11]  # the process that started, not the launcher's child
    append_event(events_file, Launched(pid=20))  # a resume: the pace and the processes start over
    append_event(events_file, Started(pid=21))
    append_event(events_file, Started(pid=22))
    append_event(events_file, Step(step=7, max_steps=10, loss=0.8))
    assert [type(event) for event in history.refresh()] == [Launched, Started, Started, Step]
    assert history.training_pids == [21, 22] and history.first_step == 6


def test_refresh_reads_only_new_complete_lines(tmp_path):
    events_file = tmp_path / "events.jsonl"
    history = RunHistory(events_file)
    assert history.refresh() == []  # no file yet
    append_event(events_file, Step(step=1, max_steps=3, loss=2.0))
    with events_file.open("a") as handle:  # a line still being written
        handle.write('{"time": 1.0, "event": "step", "step": 2, "max_')
    assert [event.step for event in history.refresh()] == [1]
    with events_file.open("a") as handle:
        handle.write('steps": 3, "loss": 1.5}\n')
    assert [event.step for event in history.refresh()] == [2]
    assert history.refresh() == [] and [event.step for event in history.steps] == [1, 2]


def test_a_replaced_events_file_is_folded_again_from_its_start(tmp_path):
    events_file = tmp_path / "events.jsonl"
    for step in (1, 2, 3):
        append_event(events_file, Step(step=step, max_steps=3, loss=1.0))
    history = RunHistory.read(events_file)
    events_file.write_text("")
    append_event(events_file, Started(pid=5))
    history.refresh()
    assert history.steps == [] and isinstance(history.lifecycle, Started)


def test_other_versions_lines_read_without_breaking(tmp_path):
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join([
        json.dumps({"time": 1.0, "event": "step", "step": 3, "max_steps": 9, "loss": 0.5, "a_future_field": 1}),
        json.dumps({"time": 2.0, "event": "a_future_kind", "x": 1}),
        json.dumps({"time": 3.0, "event": "finished", "steps": 3}),  # figures missing
        "not json",
        json.dumps(["not", "an", "object"]),
    ]) + "\n")
    history = RunHistory.read(events_file)
    assert [event.kind for event in history.events] == ["step", "finished"]
    assert history.last_step.step == 3 and history.finished.result is None


@pytest.mark.parametrize("kind", [Started, Failed, Step, Finished])
def test_other_ranks_record_only_their_own_start_and_failure(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("RANK", "1")
    events_file = tmp_path / "events.jsonl"
    event = append_event(events_file, kind())
    assert event.rank == 1
    lines = events_file.read_text().splitlines() if events_file.exists() else []
    if kind.every_rank:
        assert json.loads(lines[0])["rank"] == 1
    else:
        assert lines == []


def test_a_line_with_only_its_kind_still_becomes_that_event():
    """Fields an older tuneforge did not write take their defaults."""
    for name, kind in KINDS.items():
        assert type(kind.from_record({"time": 1.0, "event": name})) is kind
