"""The public API, one call per user action; the CLI and the TUI are thin shells over it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .data.drafting import ACCEPTED, REJECTED  # noqa: F401 - the review's verdicts, for the app
from .data.formats import load_examples
from .data.prepare import DataStats, prepare, trained_segments
from .progress import ProgressCallback
from .runs import RunDir, new_run

if TYPE_CHECKING:  # training pulls in torch; the CLI must start without it
    from tuneforge.exporters.export import ExportResult

    from .accelerate_setup import Machine
    from .data.chunking import Chunk
    from .data.drafting import Pair
    from .data.from_documents import PrepareReport
    from .fit import Fit
    from .hardware import Hardware
    from .memory import PhaseNeeds
    from .shrink.job import ShrinkDir
    from .train.result import TrainResult

Echo = Callable[[str], None] | None


@dataclass
class DataReport:
    """What `check_data` found: the detected shape, every problem, and (without problems) the stats
    and the first training example as (text, trained) runs."""

    path: Path
    shape: str
    problems: list[str]
    stats: DataStats | None
    preview: list[tuple[str, bool]] = field(default_factory=list)


def check_data(data: str | Path, model: str = "default", max_length: int = 512, eval_split: float | None = None,
               columns: dict[str, str] | None = None, seed: int = 42, split: str | None = None,
               train_reasoning: bool = True, chat_template: str = "auto") -> DataReport:
    """Validate a dataset (a file, folder or hub dataset id; `split` of a hub or saved dataset) and
    measure it with `model`'s tokenizer and chat template, split as a default run splits it unless
    `eval_split` is given."""
    from .settle import settle_eval_split

    loaded = load_examples(data, columns, split)
    if loaded.problems:
        return DataReport(loaded.path, loaded.shape, loaded.problems, None)
    eval_split = settle_eval_split(RunConfig(data=str(data), eval_split=eval_split), len(loaded.examples), loaded.shape).eval_split
    tokenizer = _tokenizer_of(model)
    prepared = prepare(loaded, tokenizer, max_length, eval_split, seed, train_reasoning=train_reasoning, chat_template=chat_template)
    preview = trained_segments(prepared.train[0], tokenizer)
    return DataReport(loaded.path, loaded.shape, [], prepared.stats, preview)


def prepare_documents(sources: list[str | Path], out_dir: str | Path, model: str = "default", chunk_tokens: int = 512,
                      eval_share: float = 0.1, seed: int = 42, echo: Echo = print, generator: str | None = None,
                      questions_per_chunk: int = 3, paraphrases: int = 0,
                      on_progress: ProgressCallback | None = None) -> PrepareReport:
    """Build a training folder from documents (PDF, DOCX, HTML, Markdown, TXT): chunks cut by `model`'s
    tokenizer and, with a `generator` (`default`, a .gguf file, ollama:NAME or an OpenAI-compatible URL), question–answer
    pairs drafted from each chunk and passed through the quality gates; written to `out_dir`
    (chunks.jsonl, pairs.jsonl, train.jsonl, eval.jsonl, report.json). A rerun continues from the drafts cache."""
    from .data.from_documents import prepare_from_documents
    from .data.generators import generator_note, open_generator

    tokenizer = _tokenizer_of(model)
    note = generator_note(generator) if generator else None
    if note and echo:
        echo(f"warning: {note}")
    drafter = open_generator(generator) if generator else None
    try:
        return prepare_from_documents([Path(s) for s in sources], _folder(out_dir), tokenizer, model, chunk_tokens,
                                      eval_share, seed, echo, drafter, questions_per_chunk, paraphrases, on_progress)
    finally:
        if drafter is not None:
            drafter.close()


def preview_chunks(sources: list[str | Path], model: str = "default", chunk_tokens: int = 512,
                   on_progress: ProgressCallback | None = None) -> tuple[list[Chunk], list[str]]:
    """The chunks `prepare_documents` would draft from (each with its source), and the files it would skip, by why."""
    from .data.chunking import chunk_passages
    from .data.documents import extract

    extraction = extract([Path(s) for s in sources], on_progress)
    return chunk_passages(extraction.passages, _tokenizer_of(model), chunk_tokens), extraction.skipped


def generator_note(spec: str) -> str | None:
    """What to say before drafting with the generator `spec` names (the built-in model drafts poorly), or None."""
    from .data.generators import generator_note as note_for

    return note_for(spec)


def test_generator(spec: str) -> float:
    """Open the generator `spec` names and time its answer to a tiny request (a GeneratorError says why it cannot)."""
    from .data.generators import open_generator, probe

    drafter = open_generator(spec)
    try:
        return probe(drafter)
    finally:
        drafter.close()


def prepared_pairs(out_dir: str | Path) -> tuple[list[Pair], list[Chunk], PrepareReport]:
    """A prepared folder's pairs, the chunks they came from, and its report: what the review shows."""
    from .data.from_documents import PrepareReport, read_chunks, read_pairs

    folder = _folder(out_dir)
    return read_pairs(folder), read_chunks(folder), PrepareReport.read(folder)


def review_pairs(out_dir: str | Path, reviews: dict[str, dict[str, str]]) -> PrepareReport:
    """Record a person's verdicts and edits (pair id → {"review": "accepted" or "rejected", "question"?, "answer"?})
    and write train.jsonl and eval.jsonl again with them applied."""
    from .data.from_documents import save_reviews

    return save_reviews(_folder(out_dir), reviews)


def prepared_training_files(out_dir: str | Path) -> tuple[Path, Path | None]:
    """A prepared folder's train.jsonl, and its eval.jsonl when that holds any record."""
    from .data.from_documents import EVAL_FILE, TRAIN_FILE, PrepareReport

    folder = _folder(out_dir)
    return folder / TRAIN_FILE, (folder / EVAL_FILE if PrepareReport.read(folder).eval_records else None)


def evidence_span(evidence: str, chunk_text: str) -> tuple[int, int] | None:
    """Where a pair's evidence quote sits in its chunk (start, end), for the review to highlight; None when it is not there."""
    from .data.pair_gates import evidence_span as span

    return span(evidence, chunk_text)


def _tokenizer_of(model: str) -> Any:
    from .models import resolve_model
    from .train.setup import load_tokenizer

    return load_tokenizer(resolve_model(model).path)


def _folder(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def create_run(config: RunConfig, run_dir: Path | None = None, echo: Echo = None, must_export: bool = False) -> RunDir:
    """A new run directory whose config.yaml holds the choices this machine settles (method, learning rate).

    Relative paths are made absolute against the working folder first. The data is checked and the
    model found (downloaded or imported when needed) before anything is written, so a typo or an
    unreachable model leaves no run behind. A model whose architecture GGUF export cannot write is
    said now, before any step (a `warning` event, and `echo`); with `must_export` it is an ExportError.
    """
    from tuneforge.exporters.gguf.types import export_refusal

    from .data.formats import load_run_data
    from .errors import ExportError
    from .events import Warned
    from .hardware import detect
    from .methods import method_spec
    from .models import resolve_base
    from .settle import require_pairs, settle_run
    from .tracking import require_trackers

    config = config.with_absolute_paths(Path.cwd())  # the training child runs elsewhere: keep no relative path
    require_trackers(config.report_to)  # a tracker that cannot log is said now, not an hour into training
    loaded, eval_loaded = load_run_data(config)
    if method_spec(config.method).pairs_data:
        require_pairs(loaded, eval_loaded, config.method)
    student = resolve_base(config)
    if config.adapter_from:
        from .train.setup import adapter_folder

        adapter_folder(config.adapter_from)
    if config.method == "distill":
        from .train.distill import check_same_tokenizer, resolve_teacher
        from .train.setup import load_tokenizer

        check_same_tokenizer(student, resolve_teacher(config), load_tokenizer(student.path, config.trust_remote_code))
    refusal = export_refusal(student.architecture)
    hint = "train and merge it with `tuneforge train`, then chat with `tuneforge chat RUN_DIR`; or pick a model that exports (`tuneforge models`)"
    if refusal and must_export:
        raise ExportError(f"{config.model}: {refusal}", hint)
    # Settled as far as it can be before the data is tokenized; the training child settles the rest.
    run = new_run(settle_run(config, detect(), data=None, dims=None, arch=student.arch).config, run_dir)
    if refusal:
        run.record(Warned(error=refusal, hint=hint))
        if echo:
            echo(f"warning: {config.model}: {refusal}")
    return run


@dataclass
class RunPlan:
    """What a run will need before it starts: auto-fit's choice with its memory plan, then merge and export."""

    model: str
    params_b: float
    method: str
    fit: Fit
    merge: PhaseNeeds
    export: PhaseNeeds
    hardware: Hardware
    notes: tuple[str, ...] = ()
    """What settling chose for this data besides the batch (replay, early stopping), in words."""


def plan_run(config: RunConfig, with_data: bool = True, quants: tuple[str, ...] = ("q4_k_m",)) -> RunPlan:
    """The memory plan of `config` on this machine, auto-fitted to the data's token lengths
    (with `with_data`; else every example is taken to be max_length long, half of it answer)."""
    from .errors import DataError, ModelError
    from .hardware import detect
    from .memory import merge_and_export_needs, model_shape
    from .models import resolve_base
    from .paths import tuneforge_home
    from .settle import DataFacts, settle_run

    hardware = detect(tuneforge_home())
    dims = model_shape(config.model) or model_shape(resolve_base(config).path)
    if dims is None:
        raise ModelError(f"{config.model}: its config.json does not give the dimensions a plan needs",
                         "check that it is a decoder-only transformer with hidden_size, num_hidden_layers and vocab_size")
    facts = DataFacts.assumed(config)
    if with_data:
        report = check_data(config.data, config.model, config.max_length, config.eval_split, config.columns, config.seed,
                            config.data_split)
        if report.problems or report.stats is None:
            raise DataError(f"{report.path}: {len(report.problems)} problem(s), first: {report.problems[0]}",
                            f"run `tuneforge data check {report.path}` for all of them")
        facts = DataFacts.measured(report.stats)
    settled = settle_run(config, hardware, facts, dims)
    assert settled.fit is not None  # the dimensions are known
    merge_needs, export_needs = merge_and_export_needs(dims[0], quants)
    return RunPlan(config.model, dims[0], settled.config.method, settled.fit, merge_needs, export_needs, hardware,
                   settled.notes)


def train(run_dir: str | Path, resume: bool = False, echo: Echo = print, accept_changes: bool = False,
          machine: Machine | None = None) -> TrainResult:
    """Train a prepared run directory, or resume it from its last complete checkpoint.

    Training runs in a child process that this call waits for, relaying its progress to `echo`:
    if the child is killed (out of memory, kill -9) this process survives and raises a
    TrainingFailed that says why and how to resume. `accept_changes` resumes a run whose
    settings, data, base or libraries changed since it started (refused otherwise). A run with
    `processes`/`nodes` above 1 starts through `accelerate launch`; `machine` says where this
    machine sits among several. `tuneforge.core.train.train_run` trains in this process instead.
    """
    from .accelerate_setup import Machine
    from .tracking import require_trackers
    from .training_process import train_in_child

    run = RunDir(Path(run_dir).expanduser().resolve())
    if run.config_file.is_file():  # else the child says what is missing
        require_trackers(run.load_config().report_to)
    return train_in_child(run, resume, accept_changes, echo, machine or Machine())


def merge(run_dir: str | Path, dtype: str | None = None) -> Path:
    """Merge a trained run's adapter into its base (RUN_DIR/merged)."""
    from .merge import merge_run

    return merge_run(RunDir(Path(run_dir).expanduser().resolve()), dtype)


def export(source: str | Path, quants: list[str] | None = None, out: Path | None = None, echo: Echo = print) -> ExportResult:
    """Export a run or model folder to verified GGUF files (see core/exporting.py)."""
    from .exporting import export as export_gguf

    return export_gguf(Path(source), quants, out, echo)


def export_adapter(run_dir: str | Path, out: Path | None = None, echo: Echo = print) -> ExportResult:
    """Export a run's LoRA adapter as a GGUF adapter over an f16 GGUF of its base, verified together."""
    from .exporting import export_adapter as export_gguf_adapter

    return export_gguf_adapter(Path(run_dir), out, echo)


def run_pipeline(config: RunConfig, run_dir: Path | None = None, echo: Echo = print,
                 quants: list[str] | None = None) -> tuple[RunDir, ExportResult | None]:
    """Train → merge → (with `quants`) export and verify, in a new run directory."""
    from .errors import ConfigError
    from .methods import method_spec

    if not method_spec(config.method).mergeable:  # say so before training, not after
        raise ConfigError(f"method {config.method} cannot be merged into the model's weights or exported to GGUF",
                          f"train it with `tuneforge train --method {config.method} …`, then chat with `tuneforge chat RUN_DIR`")
    run = create_run(config, run_dir, must_export=bool(quants))
    if echo:
        echo(f"run directory: {run.path}")
    train(run.path, echo=echo)
    if echo:
        echo("merging the adapter into the base …")
    merge(run.path)
    return run, (export(run.path, quants, echo=echo) if quants else None)


def shrink(source: str, layers: int | None = None, keep: float | None = None, stages: int | list[int] | None = None,
           data: str | None = None, eval_data: str | None = None, epochs: float | None = None, max_steps: int | None = None,
           run_dir: Path | None = None, echo: Echo = print, settings: dict[str, Any] | None = None) -> ShrinkDir:
    """Shrink `source` (a finished run or a model reference) to `layers` (or the fraction `keep`) in
    `stages` (a count, or each stage's layer count), healing each stage by distillation on the run's data (or `data`) for `epochs` (or
    `max_steps`); `settings` are further healing-run settings (e.g. lora_r, learning_rate).
    Returns the shrink directory; its last stage is the smallest model (see core/shrink/job.py)."""
    from .shrink.job import create_shrink, plan_shrink, run_shrink

    plan = plan_shrink(source, layers, keep, stages, data, eval_data, epochs, max_steps, settings)
    folder = create_shrink(plan, run_dir)
    if echo:
        echo(f"shrink directory: {folder.path} ({' → '.join(map(str, plan.layers))} layers)")
    run_shrink(folder, echo)
    return folder


def resume_shrink(shrink_dir: str | Path, echo: Echo = print) -> ShrinkDir:
    """Continue a stopped shrink from where it stopped (a healing run from its last checkpoint)."""
    from .shrink.job import ShrinkDir, run_shrink

    folder = ShrinkDir(Path(shrink_dir))
    folder.plan()  # a ConfigError unless it is a shrink directory
    run_shrink(folder, echo)
    return folder
