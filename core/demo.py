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


def demo_probes() -> list[dict[str, str]]:
    """The demo's questions, each with the word a correct answer contains."""
    return json.loads(demo_file(DEMO_PROBES).read_text(encoding="utf-8"))["probes"]


def run_demo(run_dir: Path | None = None, echo: Echo = print, **overrides: object) -> list[ProbeAnswer]:
    """Ask the base model the probe questions, fine-tune it, and ask the fine-tuned model again."""
    from .chat import load_chat_model

    config = demo_config(**overrides)
    probes = demo_probes()
    if echo:
        echo("asking the base model first …")
    base = load_chat_model(config.model)
    before = [base.answer(p["question"]) for p in probes]
    del base
    run = run_pipeline(config, run_dir, echo)
    tuned = load_chat_model(run.path)
    return [
        ProbeAnswer(p["question"], p["expect"], b, tuned.answer(p["question"]))
        for p, b in zip(probes, before)
    ]
