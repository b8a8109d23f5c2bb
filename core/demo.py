"""The built-in demo: teach the default model facts about Brindlewick and show before/after answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .answer_scores import contains_reference
from .api import Echo
from .config import RunConfig
from .general_answers import KeptAnswers, general_questions

DEMO_DATA = "brindlewick.jsonl"
DEMO_EVAL = "brindlewick-eval.jsonl"
DEMO_PROBES = "brindlewick-probes.json"
DEMO_QUESTIONS = "demo-questions.jsonl"
"""The probes as a dataset (the expected word as the reference), written into RUN_DIR/eval/ for the evaluation."""
DEMO_GGUF_TYPE = "q8_0"
"""Tiny models quantize badly below 8 bits; q8_0 keeps the 135M model's answers."""
ANSWER_TOKENS = 64
"""Enough for any demo answer; the base model would otherwise ramble on for its whole budget."""


@dataclass
class ProbeAnswer:
    """One demo question with the base and fine-tuned answers, and whether each holds the fact."""

    question: str
    expect: str
    before: str
    after: str

    @property
    def known_before(self) -> bool:
        """The base model's answer contains the expected word (the evaluation's "contains")."""
        return contains_reference(self.before, self.expect)

    @property
    def known_after(self) -> bool:
        """The fine-tuned GGUF's answer contains it."""
        return contains_reference(self.after, self.expect)


def demo_file(name: str) -> Path:
    """A file of the shipped demo dataset."""
    return Path(str(resources.files("tuneforge.core") / "datasets" / name))


def demo_config(**overrides: object) -> RunConfig:
    """The demo's run config: the default model on the shipped Brindlewick dataset."""
    return RunConfig.from_dict({
        "model": "default",
        "data": str(demo_file(DEMO_DATA)),
        "eval_data": str(demo_file(DEMO_EVAL)),
        **overrides,
    })


@dataclass
class DemoResult:
    """The demo's answers: the planted facts, and the everyday answers the fine-tuned file kept."""

    facts: list[ProbeAnswer]
    kept: KeptAnswers | None
    """Of the everyday questions the base model answers right, those the fine-tuned GGUF still answers right."""
    run_dir: Path
    table: str = ""
    """The evaluation's summary table (base model and GGUF, on every demo question)."""


def demo_probes() -> list[dict[str, str]]:
    """The demo's fact questions, each with the word a right answer contains."""
    return json.loads(demo_file(DEMO_PROBES).read_text(encoding="utf-8"))["probes"]


def run_demo(run_dir: Path | None = None, echo: Echo = print, **overrides: object) -> DemoResult:
    """Fine-tune the default model on the Brindlewick facts, merge and export it, then ask the base model and
    the verified GGUF the demo's questions through the evaluation (`tuneforge eval`: RUN_DIR/eval/report.json)."""
    from .api.runs import run_pipeline
    from .evaluation import EVAL_FOLDER, evaluate_run

    config = demo_config(**overrides)
    run, exported = run_pipeline(config, run_dir, echo, quants=[DEMO_GGUF_TYPE])
    if exported is None or not exported.passed:
        from .errors import ExportError

        raise ExportError("the demo's GGUF failed verification", f"see {run.export / 'export-report.json'}")
    probes = demo_probes()
    asked = run.path / EVAL_FOLDER / DEMO_QUESTIONS
    asked.parent.mkdir(parents=True, exist_ok=True)
    asked.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q["question"]},
                                                      {"role": "assistant", "content": q["expect"]}]}) + "\n"
                             for q in probes), encoding="utf-8")
    if echo:
        echo(f"asking the base model and the fine-tuned GGUF the {len(probes)} demo questions and "
             f"{len(general_questions())} everyday questions …")
    report = evaluate_run(run.path, data=str(asked), max_new_tokens=ANSWER_TOKENS, kinds=("base", "gguf"))
    base, tuned = report.models
    answers = [ProbeAnswer(q["question"], q["expect"], b.text, a.text)
               for q, b, a in zip(probes, base.answers, tuned.answers, strict=True)]
    return DemoResult(answers, tuned.kept, run.path, report.table())
