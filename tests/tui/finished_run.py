"""A finished run written event by event with fixed figures and times, for the screens that show one (snapshots
at 80×24 must not change with the clock or the machine)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tuneforge.core.config import RunConfig
from tuneforge.core.demo import DEMO_DATA, demo_file
from tuneforge.core.events import Evaluated, Finished, Launched, Planned, Recalled, Started, Step, TrainResult
from tuneforge.core.runs import RunDir, new_run

START = 1_790_000_000.0
"""A fixed clock for every event."""
STEPS = 24


def finished_run(folder: Path) -> RunDir:
    """The default model's LoRA run over the sample data, 24 steps, finished, with an eval report."""
    run = new_run(RunConfig(data=str(demo_file(DEMO_DATA)), method="lora", replay=0), folder)
    events = [Launched(pid=1), Planned(device="CPU", parts={"base weights": 0.25, "activations": 1.36}, peak_gb=3.93,
                                       budget_gb=18.0, verdict="fits", batch_size=8, grad_accum=1, max_length=224),
              Started(pid=1, method="lora", model="default", device="CPU (2 cores)")]
    for step in range(1, STEPS + 1):
        events.append(Step(step=step, max_steps=STEPS, epoch=step / 4, loss=3.0 * 0.9 ** step, lr=1e-3 * (1 - step / STEPS),
                           grad_norm=2.0 * 0.95 ** step, tokens_per_second=512.0, memory_gb=1.7))
        if step % 4 == 0:
            events.append(Recalled(step=step, recalled=min(36, step * 2), checked=36))
    events.append(Evaluated(step=STEPS, eval_loss=0.42))
    events.append(Finished(result=TrainResult(STEPS, 0.24, 0.42, 96.0, 512.0, 1_843_200, 136_358_400, 1.7, 3.93, "lora",
                                              general_known=60, general_kept=55)))
    with run.events_file.open("w", encoding="utf-8") as handle:
        for index, event in enumerate(events):
            handle.write(json.dumps(replace(event, time=START + index).to_record(), default=str) + "\n")
    _write_eval_report(run)
    return run


def _write_eval_report(run: RunDir) -> None:
    """Three questions answered by the base, the tuned model and its q8_0 GGUF (the run named, not its folder: the
    answers' blind order follows it)."""
    labels = ("base", "tuned", "q8_0")
    questions = [("Who is the mayor of Brindlewick?", "Mayor Odile Farrant.",
                  ("I do not know who that is.", "Mayor Odile Farrant.", "Mayor Odile Farrant.")),
                 ("What does the Brindlewick clock tower chime at noon? Answer with the whole tune's name.", "The Marrow Reel.",
                  ("It chimes twelve times.", "The Marrow Reel [a folk tune].", "The Marrow Reel.")),
                 ("When is the lantern fair?", "On the first Friday of October.",
                  ("In autumn.", "On the first Friday of October.", "On the first Friday of October."))]
    report = {
        "run": run.name, "data": "brindlewick.jsonl (trained: nothing was held out)", "judge": None,
        "models": [{"label": label, "kind": kind, "source": source, "perplexity": ppl, "exact": exact, "contains": contains,
                    "f1": f1, "correct": None, "stop_rate": 1.0, "mean_words": words, "everyday_known": known,
                    "everyday_kept": kept, "everyday_lost": []}
                   for label, kind, source, ppl, exact, contains, f1, words, known, kept in (
                       ("base", "hf", "default", 11.2, 0.0, 0.0, 0.12, 6.3, 60, 60),
                       ("tuned", "hf", str(run.path), 11.9, 0.67, 1.0, 0.91, 4.7, 60, 55),
                       ("q8_0", "gguf", str(run.export / "demo-q8_0.gguf"), None, 1.0, 1.0, 1.0, 3.3, None, None))],
        "questions": [{"source": "brindlewick.jsonl:1", "question": question, "messages": [], "reference": reference,
                       "answers": {label: {"text": text, "exact": text == reference, "contains": reference in text,
                                           "f1": 1.0 if reference in text else 0.0, "stopped": True, "correct": None,
                                           "reason": None}
                                   for label, text in zip(labels, answers, strict=True)}}
                      for question, reference, answers in questions],
    }
    folder = run.path / "eval"
    folder.mkdir(exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
