"""Did it learn my domain? Every eval question asked of the base model, the tuned model and each
verified GGUF, each answer scored against its reference.

The questions are the run's eval split (its `eval_data`, else the share `eval_split` held out of
its data; the same examples training scored its eval loss on; the training data itself when nothing
was held out, as for a small set of answers, which then says what was learned), or any dataset file: each chat
example is asked up to its last assistant turn, which is the reference. Answers are greedy. The
GGUF files answer through llama.cpp with the template inside the file, as a person will run them.

Per answer: exact match, reference contained, token F1 (answer_scores), whether the model ended
its turn within the budget, and with a judge its verdict and reason. Per model: those as rates,
the mean answer length, and the forgetting probe's perplexity on general text (base and tuned;
the GGUFs' perplexity beside the merged model's is in export/export-report.json). With the base asked, each
model also answers the everyday questions and keeps some of the base's right answers (forgetting); the base's own are
those its run recorded before training (general-answers.json), so both count the same right answers. The report goes
to RUN_DIR/eval/report.json, with the table as RUN_DIR/eval/report.txt.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .answer_scores import score_answer
from .atomic import atomic_write_text
from .data.records import Example
from .errors import DataError, GeneratorError, ModelError
from .general_answers import RESULT_FILE as GENERAL_ANSWERS_FILE
from .general_answers import KeptAnswers, general_questions, recorded_base_answers
from .judge import judge_answer
from .progress import Progress, ProgressCallback
from .replies import GENERATION_BATCH
from .reply import Reply
from .runs import RunDir

EVAL_FOLDER = "eval"
REPORT_FILE, TABLE_FILE = "report.json", "report.txt"
DEFAULT_ANSWER_TOKENS = 128
"""Enough for a domain answer of a few sentences; a model that has not learned to stop is cut here."""
TRAINED_NOTE = " (trained: nothing was held out)"
"""Ends the questions' origin when a run held nothing out and its own training data is asked."""


@dataclass(frozen=True)
class EvalQuestion:
    """One question: the conversation up to the answer, and the answer the data gives (the reference)."""

    source: str
    messages: list[dict[str, Any]]
    reference: str

    @property
    def question(self) -> str:
        """The last user turn's text, as a person reads the question."""
        return next((str(m.get("content") or "") for m in reversed(self.messages) if m.get("role") == "user"), "")


@dataclass
class ModelAnswer:
    """One model's answer to one question, with its scores."""

    text: str
    stopped: bool
    exact: bool
    contains: bool
    f1: float
    correct: bool | None = None
    """The judge's verdict (None without a judge, or when its reply could not be read)."""
    reason: str | None = None


@dataclass
class EvaluatedModel:
    """A model that answered every question: what it is, its answers in question order, its perplexity."""

    label: str
    kind: str
    """"base", "tuned" or "gguf"."""
    source: str
    answers: list[ModelAnswer] = field(default_factory=list)
    perplexity: float | None = None
    """On the forgetting probe's general text; None for GGUF files."""
    everyday: list[str] | None = None
    """Its answers to the everyday questions (general_answers.py), when the base model was asked too."""
    kept: KeptAnswers | None = None
    """Of the everyday questions the base answered right, those this model still answers right."""

    def rate(self, measure: str) -> float | None:
        """The share of answers with `measure` ("exact", "contains", "stopped", "correct"); the mean for "f1"."""
        values = [getattr(a, measure) for a in self.answers]
        if measure == "correct":
            values = [v for v in values if v is not None]
        return sum(float(v) for v in values) / len(values) if values else None

    @property
    def mean_words(self) -> float:
        """The answers' mean length in words."""
        return sum(len(a.text.split()) for a in self.answers) / max(1, len(self.answers))


@dataclass
class EvalReport:
    """Every model's answers to every question, and where they came from."""

    run: str
    data: str
    judge: str | None
    questions: list[EvalQuestion]
    models: list[EvaluatedModel]

    @property
    def asked_training_data(self) -> bool:
        """True when the questions are the run's own training data (it held nothing out)."""
        return self.data.endswith(TRAINED_NOTE)

    def to_dict(self) -> dict[str, Any]:
        """The report as report.json holds it: a summary per model, then per question every model's answer."""
        return {
            "run": self.run, "data": self.data, "judge": self.judge,
            "models": [{"label": m.label, "kind": m.kind, "source": m.source, "perplexity": m.perplexity,
                        "exact": m.rate("exact"), "contains": m.rate("contains"), "f1": m.rate("f1"),
                        "correct": m.rate("correct"), "stop_rate": m.rate("stopped"), "mean_words": m.mean_words,
                        "everyday_known": m.kept.known if m.kept else None, "everyday_kept": m.kept.kept if m.kept else None,
                        "everyday_lost": [asdict(lost) for lost in m.kept.lost] if m.kept else None}
                       for m in self.models],
            "questions": [{"source": q.source, "question": q.question, "messages": q.messages, "reference": q.reference,
                           "answers": {m.label: asdict(m.answers[i]) for m in self.models}}
                          for i, q in enumerate(self.questions)],
        }

    def table(self) -> str:
        """The per-model summary as a readable table, with what each column means."""
        judged = self.judge is not None
        header = ["model", "exact", "contains", "F1", *(["judge"] if judged else []), "stopped", "words", "everyday kept",
                  "general ppl"]
        rows = [header]
        for m in self.models:
            rows.append([m.label, *(shown(measure, m.rate(measure)) for measure in ("exact", "contains", "f1")),
                         *([shown("correct", m.rate("correct"))] if judged else []), shown("stopped", m.rate("stopped")),
                         f"{m.mean_words:.1f}", f"{m.kept.kept}/{m.kept.known}" if m.kept else "–",
                         f"{m.perplexity:.2f}" if m.perplexity is not None else "–"])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                 for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(f"\n{len(self.questions)} questions from {self.data}. exact: the answer is the reference; contains: "
                     "the reference's words appear in the answer; F1: shared words; "
                     + ("judge: graded correct by " + str(self.judge) + "; " if judged else "")
                     + "stopped: ended its turn itself; everyday kept: of the everyday questions the base model answers "
                     "right, those this model still answers right (forgetting); general ppl: perplexity on general text.")
        lines.append(what_the_scores_measure(self.data))
        return "\n".join(lines)

    def write(self, folder: Path) -> Path:
        """Write report.json and report.txt into `folder`; the report's path."""
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / REPORT_FILE, json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")
        atomic_write_text(folder / TABLE_FILE, self.table() + "\n")
        return folder / REPORT_FILE


def what_the_scores_measure(data: str, how_else: bool = True) -> str:
    """What the scores of questions from `data` (a report's origin line) tell: recall of what trained, or what the
    model makes of questions it never saw. A run that held nothing out is asked its own training questions, and a
    person reading 'exact' there must not take it for generalisation (nor a held-out 0 % for failure to learn).
    `how_else` adds how to ask other questions (the CLI's way)."""
    if data.endswith(TRAINED_NOTE):
        recall = "Recall: these are the questions it trained on, so the scores say what it learned."
        return recall + (" To see what it makes of them asked another way, evaluate on such questions (tuneforge eval "
                         "--data FILE, or a prepared folder's eval.jsonl)." if how_else else "")
    return ("Generalisation: these questions were not trained as they are asked here, so the scores say what it makes of "
            "wordings or facts it never saw (a fact held out entirely is not in the model: a low score on it is expected).")


def questions_from(examples: Sequence[Example]) -> list[EvalQuestion]:
    """The examples that end in an assistant answer with text, as questions (tool calls and documents are left out)."""
    questions = []
    for example in examples:
        messages = example.messages or []
        if len(messages) < 2 or messages[-1].get("role") != "assistant" or messages[-1].get("tool_calls"):
            continue
        reference = str(messages[-1].get("content") or "").strip()
        if reference:
            prompt = [{"role": m["role"], "content": m.get("content") or ""} for m in messages[:-1]]
            questions.append(EvalQuestion(example.source, prompt, reference))
    return questions


def run_questions(run: RunDir, data: str | None = None) -> tuple[list[EvalQuestion], str]:
    """The questions to ask and where they come from: `data`, else the run's eval split, else (nothing held out)
    its training data."""
    from .data.formats import load_examples
    from .data.prepare import run_split

    config = run.load_config()
    if data is not None:
        loaded = load_examples(data, config.columns)
        loaded.raise_for_problems()
        examples, origin = loaded.examples, str(data)
    else:
        trained, examples = run_split(config)
        origin = config.eval_data or f"the eval split of {config.data}"
        if not examples:  # every example trained (a small set of answers): ask them, to see what was learned
            examples, origin = trained, f"{config.data}{TRAINED_NOTE}"
    questions = questions_from(examples)
    if not questions:
        raise DataError(f"{origin}: no chat example that ends in an assistant answer to ask",
                        "pass questions with answers: tuneforge eval RUN_DIR --data FILE")
    return questions, origin


Answerer = Callable[[], Any]
"""Opens a chat model (ChatModel or GgufChat) when called, so only one is loaded at a time."""


def models_to_ask(run: RunDir) -> list[tuple[str, str, str, Answerer]]:
    """(label, kind, source, opener) of every model to evaluate: the base, the tuned model (merged, else
    base + adapter), and each GGUF in export/ that passed verification."""
    from tuneforge.exporters.report import passed_files

    from .chat import load_chat_model, load_transformers_chat

    config = run.load_config()
    if not (run.merged / "config.json").is_file() and not (run.adapter / "adapter_config.json").is_file():
        raise ModelError(f"{run.path}: this run has no trained model yet", f"train it first: tuneforge train {run.path}")
    tuned_source = run.merged if (run.merged / "config.json").is_file() else run.adapter
    models: list[tuple[str, str, str, Answerer]] = [
        ("base", "base", config.model, lambda: load_transformers_chat(config.model, config.chat_template)),
        ("tuned", "tuned", str(tuned_source), lambda: load_transformers_chat(run.path)),
    ]
    for path in passed_files(run.export, models_only=True):
        models.append((path.name, "gguf", str(path), lambda path=path: load_chat_model(path)))
    return models


def evaluate_run(run_dir: str | Path, data: str | None = None, judge: str | None = None,
                 max_new_tokens: int = DEFAULT_ANSWER_TOKENS, on_progress: ProgressCallback | None = None,
                 kinds: Sequence[str] = ("base", "tuned", "gguf"), everyday: bool = True) -> EvalReport:
    """Ask every model of the run (of `kinds`) every question, score the answers (and have `judge` grade
    them: a generator spec as `data prepare --generator` takes), and write RUN_DIR/eval/report.json.
    With `everyday` and the base among `kinds`, every model also answers the everyday questions, and each
    model's forgetting is how many of the base's right answers it keeps."""
    from .train.guards import general_perplexity

    run = RunDir(Path(run_dir).expanduser().resolve())
    askers = [asker for asker in models_to_ask(run) if asker[1] in kinds]
    questions, origin = run_questions(run, data)
    grader = _open_judge(judge) if judge else None
    asking_everyday = everyday and any(kind == "base" for _, kind, _, _ in askers)
    everyday_count = len(general_questions()) if asking_everyday else 0
    progress = Progress("answering", (len(questions) + everyday_count) * len(askers))
    evaluated = []
    try:
        for label, kind, source, opener in askers:
            chat = opener()
            try:
                model = EvaluatedModel(label, kind, source)
                for question, reply in zip(questions, _replies(chat, label, questions, max_new_tokens, progress, on_progress), strict=True):
                    model.answers.append(ModelAnswer(reply.text, reply.stopped, **asdict(score_answer(reply.text, question.reference))))
                if kind != "gguf":
                    model.perplexity = general_perplexity(chat.model, chat.tokenizer)
                if asking_everyday:
                    progress.detail = f"{label}: everyday questions"
                    if on_progress:
                        on_progress(progress)
                    # The base answered them before its run trained: the forgetting figures then count the same
                    # right answers as the run's own probe, and the base is not asked the 116 questions again.
                    recorded = recorded_base_answers(run.path / GENERAL_ANSWERS_FILE) if kind == "base" else None
                    model.everyday = recorded or everyday_answers(chat, base=kind == "base")
                    progress.done += everyday_count
            finally:
                chat.close()
            evaluated.append(model)
        if asking_everyday:
            count_kept(evaluated)
        if grader is not None:
            _grade(grader, questions, evaluated, on_progress)
    finally:
        if grader is not None:
            grader.close()
    report = EvalReport(str(run.path), origin, grader.label if grader else None, questions, evaluated)
    report.write(run.path / EVAL_FOLDER)
    _to_trackers(run, report)
    return report


def _to_trackers(run: RunDir, report: EvalReport) -> None:
    """The scores into the run's offline trackers (TensorBoard, trackio), beside its training curves."""
    from .tracking import log_eval_scores

    trackers = run.load_config().report_to
    if trackers:
        last = run.history().last_step
        scores = {m.label: {measure: value for measure, value in
                            (("exact", m.rate("exact")), ("contains", m.rate("contains")), ("f1", m.rate("f1")),
                             ("stopped", m.rate("stopped")), ("everyday_kept", m.kept.kept / m.kept.known if m.kept and m.kept.known else None))
                            if value is not None}
                  for m in report.models}
        log_eval_scores(run.path, trackers, scores, last.step if last else 0)


def _replies(chat: Any, label: str, questions: list[EvalQuestion], max_new_tokens: int, progress: Progress,
             on_progress: ProgressCallback | None) -> Iterator[Reply]:
    """`chat`'s reply to each question, progress counted as they come: a transformers model answers in batches,
    a GGUF one by one through llama.cpp, as a person would ask it."""
    progress.detail = label
    batched = hasattr(chat, "replies")
    step = GENERATION_BATCH if batched else 1
    for start in range(0, len(questions), step):
        asked = [question.messages for question in questions[start:start + step]]
        yield from chat.replies(asked, max_new_tokens) if batched else [chat.reply(asked[0], max_new_tokens)]
        progress.done += len(asked)
        if on_progress:
            on_progress(progress)


def everyday_answers(chat: Any, base: bool = False) -> list[str]:
    """A chat model's answers to the everyday questions: a transformers model answers them in batches (a `base`
    model's read from the cache of its earlier answers, replies.py, when it gave them in this precision before),
    a GGUF one by one through llama.cpp, as a person would ask it."""
    from .general_answers import ANSWER_TOKENS, base_answers, conversations, general_questions, model_answers

    if hasattr(chat, "tokenizer"):
        if base:  # the folder it was loaded from keys the cache, as the training child's probe keys it
            return base_answers(chat.model, chat.tokenizer, Path(chat.model.name_or_path))
        return model_answers(chat.model, chat.tokenizer)
    return [chat.reply(conversation, ANSWER_TOKENS).text for conversation in conversations(general_questions())]


def count_kept(models: list[EvaluatedModel]) -> None:
    """Set every model's `kept`: its everyday answers scored against the base model's."""
    from .general_answers import compare_answers

    questions = general_questions()
    base = next(m for m in models if m.kind == "base")
    for model in models:
        if base.everyday is not None and model.everyday is not None:
            model.kept = compare_answers(questions, base.everyday, model.everyday)


def _open_judge(spec: str) -> Any:
    """The judge, asked once before any model answers, so that one that cannot answer is said at once."""
    from .drafting.generators import open_generator, probe

    judge = open_generator(spec, option="--judge")
    try:
        probe(judge)
    except GeneratorError as exc:
        judge.close()
        raise GeneratorError(f"the judge {exc.message}", f"{exc.hint}, or leave out --judge; nothing was evaluated yet") from None
    return judge


def _grade(grader: Any, questions: list[EvalQuestion], models: list[EvaluatedModel], on_progress: ProgressCallback | None) -> None:
    """Have the judge grade every answer, in place."""
    progress = Progress("judging", len(questions) * len(models))
    for model in models:
        for question, answer in zip(questions, model.answers, strict=True):
            verdict = judge_answer(grader, question.question, question.reference, answer.text)
            answer.correct, answer.reason = verdict.correct, verdict.reason
            progress.done += 1
            progress.detail = model.label
            if on_progress:
                on_progress(progress)


def read_eval_report(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN_DIR/eval/report.json as written, or None when the run was not evaluated."""
    path = Path(run_dir) / EVAL_FOLDER / REPORT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def blind_order(report: dict[str, Any], index: int) -> list[str]:
    """The models' labels for question `index` in a shuffled order, the same each time it is shown, so a
    person comparing the answers does not know which model gave which."""
    labels = [m["label"] for m in report["models"]]
    random.Random(f"{report['run']}:{index}").shuffle(labels)
    return labels


def save_mark(run_dir: str | Path, index: int, better: str) -> dict[str, Any]:
    """Record that a person found model `better`'s answer to question `index` the best, in report.json
    (`marks`: question index → label, and `preferred`: label → count); the report as saved."""
    report = read_eval_report(run_dir)
    if report is None:
        raise ModelError(f"{run_dir}: this run has no evaluation yet", f"evaluate it first: tuneforge eval {run_dir}")
    labels = [m["label"] for m in report["models"]]
    if better not in labels or not 0 <= index < len(report["questions"]):
        raise ValueError(f"no model {better!r} or question {index} in the report")
    marks = report.setdefault("marks", {})
    marks[str(index)] = better
    report["preferred"] = {label: sum(1 for mark in marks.values() if mark == label) for label in labels}
    atomic_write_text(Path(run_dir) / EVAL_FOLDER / REPORT_FILE, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def shown(measure: str, value: float | None) -> str:
    """A per-model figure as the tables show it: F1 as 0.00, the rates as percentages, "–" when not measured."""
    if value is None:
        return "–"
    return f"{value:.2f}" if measure == "f1" else f"{value:.0%}"
