"""The built-in demo: teach the default model facts about Brindlewick and show before/after answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .config import RunConfig
from .pipeline import Echo, run_pipeline

DEMO_DATA = "brindlewick.jsonl"
DEMO_EVAL = "brindlewick-eval.jsonl"
DEMO_PROBES = "brindlewick-probes.json"
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
        return self.expect.lower() in self.before.lower()

    @property
    def known_after(self) -> bool:
        return self.expect.lower() in self.after.lower()


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
    """The demo's answers: the planted facts, and control questions the model must still answer."""

    facts: list[ProbeAnswer]
    controls: list[ProbeAnswer]
    run_dir: Path


def demo_probes() -> dict[str, list[dict[str, str]]]:
    """The demo's fact questions ("probes") and general-knowledge "controls", each with the word a right answer contains."""
    return json.loads(demo_file(DEMO_PROBES).read_text(encoding="utf-8"))


def run_demo(run_dir: Path | None = None, echo: Echo = print, **overrides: object) -> DemoResult:
    """Ask the base model the demo questions, fine-tune, merge and export it, then ask the exported GGUF."""
    from .chat import load_chat_model, load_transformers_chat

    config = demo_config(**overrides)
    questions = demo_probes()
    everything = questions["probes"] + questions["controls"]
    if echo:
        echo(f"asking the base model {len(everything)} questions first …")
    base = load_transformers_chat(config.model)
    before = [base.answer(q["question"], max_new_tokens=ANSWER_TOKENS) for q in everything]
    base.close()
    run, exported = run_pipeline(config, run_dir, echo, quants=[DEMO_GGUF_TYPE])
    if exported is not None and not exported.passed:
        from .errors import ExportError

        raise ExportError("the demo's GGUF failed verification", f"see {exported.report}")
    tuned = load_chat_model(run.path)  # the verified GGUF, through llama.cpp
    try:
        answers = [
            ProbeAnswer(q["question"], q["expect"], b, tuned.answer(q["question"], max_new_tokens=ANSWER_TOKENS))
            for q, b in zip(everything, before, strict=True)
        ]
    finally:
        tuned.close()
    facts = len(questions["probes"])
    return DemoResult(answers[:facts], answers[facts:], run.path)
