"""Run one training job in a run directory: data → base made trainable for the method → TRL trainer → adapter/ or merged/."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..accelerate_setup import sharded, world_size
from ..allocator import allocator_in_use
from ..atomic import atomic_directory, is_disk_full
from ..checkpoint_folders import discard_incomplete
from ..config import RunConfig
from ..data.formats import LoadedData, load_run_data
from ..data.prepare import DataRecipe, PreparedData, prepare, train_and_eval
from ..errors import ModelError, ResourceError, TrainingStopped, TuneforgeError
from ..events import Downloading, Failed, Finished, Started, Stopped, TrainResult, Warned
from ..fit import Fit
from ..general_answers import RESULT_FILE as GENERAL_ANSWERS_FILE
from ..general_answers import base_answers, compare_answers, general_questions, model_answers, write_answers
from ..hardware import Hardware, detect, resolve_method
from ..jobs import oom_kills
from ..memory import model_shape
from ..methods import method_spec, smaller_base_options
from ..models import ResolvedModel, resolve_base
from ..rank import is_main_process, process_rank
from ..runs import BASE_RECORD, RunDir
from ..settle import DataFacts, require_method_data, settle_eval_split, settle_run
from ..tracking import log_figures
from .callbacks import EventsCallback, GracefulStop, peak_memory_gb
from .checkpoints import CheckpointKeeper
from .distill import load_teacher, teacher_answers
from .grpo import SampledAnswers
from .guards import CUT_OFF_HINT, NO_GRAPH, GradientGuard, OverfitWatch, general_perplexity
from .planning import check_memory_plan
from .preflight import check_training_inputs
from .recall import RecallStop
from .replay import GENERAL_PROMPTS, base_replay_examples, general_examples, general_prompts, within_budget
from .resume import check_resume, fingerprint, record
from .setup import load_base_model, load_tokenizer, lora_merged, make_trainable, parameter_count
from .trainers import build_trainer, held_out_accuracy, training_arguments


def train_run(run: RunDir, resume: bool = False, echo: Callable[[str], None] | None = print,
              callbacks: Sequence[Any] = (), accept_changes: bool = False) -> TrainResult:
    """Train the run in `run` (or continue it from its last complete checkpoint with `resume`).

    A resume is refused when the run's settings, data, base model or libraries changed since
    it started (see `resume.check_resume`); `accept_changes` continues anyway.
    `callbacks` are extra transformers TrainerCallbacks (observers for tests and tools).
    """
    config = run.load_config()
    # The plan's CPU terms depend on the malloc this very process runs on.
    hardware = replace(detect(run.path), cpu_allocator=allocator_in_use())
    if not hardware.cuda and config.processes > 1:  # CPU processes share the machine's memory
        hardware = replace(hardware, ram_available_gb=hardware.ram_available_gb / config.processes)
    # The method decides what loads; the learning rate waits for the model's architecture (settle_run).
    config = config.with_updates(method=resolve_method(config.method, hardware))
    checkpoint = run.checkpoint_to_train_from(resume)
    log = _RunLog(run, echo, is_main_process())
    echo = log.line
    run.record(Started(pid=os.getpid(), oom_kills=oom_kills(), method=config.method, model=config.model,
                       device=hardware.device_label, resume_from=str(checkpoint) if checkpoint else None))
    try:
        result = _train(run, config, hardware, checkpoint, echo, callbacks, accept_changes)
    except TrainingStopped as stopped:
        run.record(Stopped(error=stopped.message, hint=stopped.hint))
        raise
    except TuneforgeError as exc:
        run.record(Failed(error=exc.message, hint=exc.hint))
        raise
    except KeyboardInterrupt:
        run.record(Stopped(error="aborted without a checkpoint",
                           hint=f"resume from the last checkpoint with `tuneforge train --resume {run.path}`"))
        raise
    except Exception as exc:
        log.traceback()
        foreseeable = _as_foreseeable(exc, run, config)
        if foreseeable is None:
            run.record(Failed(error=f"{type(exc).__name__}: {exc}", hint=f"see {run.log_file}"))
            raise
        run.record(Failed(error=foreseeable.message, hint=foreseeable.hint))
        raise foreseeable from exc
    finally:
        log.close()
    run.record(Finished(result=result))
    return result


def _as_foreseeable(exc: Exception, run: RunDir, config: RunConfig) -> TuneforgeError | None:
    """Out of memory, a full disk and a model whose trained parts are all cut off from the loss are foreseeable:
    say so with what to change."""
    if isinstance(exc, RuntimeError) and NO_GRAPH in str(exc):
        return ModelError("no trained part of the model takes part in the loss: training would change nothing", CUT_OFF_HINT)
    resume = f"then continue with `tuneforge train --resume {run.path}` if a checkpoint was saved"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return ResourceError(
            "training ran out of memory",
            f"lower batch_size (raising grad_accum keeps the effective batch), max_length, or use "
            f"{smaller_base_options(config.method, config.load_in_4bit)}; {resume}",
        )
    if is_disk_full(exc):
        return ResourceError(f"the disk holding {run.path} is full", f"free some space or lower save_total_limit; {resume}")
    return None


class _RunLog:
    """train.log: every progress line (also echoed to the caller) and the traceback of a crash.

    In a distributed run rank 0 writes the progress; every rank writes its own traceback.
    """

    def __init__(self, run: RunDir, echo: Callable[[str], None] | None, main: bool = True) -> None:
        self._file = run.log_file.open("a", encoding="utf-8")
        self._echo = echo
        self._main = main

    def line(self, text: str) -> None:
        if not self._main:
            return
        self._file.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self._file.flush()
        if self._echo:
            self._echo(text)

    def traceback(self) -> None:
        import traceback

        if not self._main:
            self._file.write(f"[rank {process_rank()}]\n")
        traceback.print_exc(file=self._file)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class Inputs:
    """What a run trains from: its data (training and eval records), its base and tokenizer, and a distillation's teacher."""

    loaded: LoadedData
    eval_loaded: LoadedData | None
    model: ResolvedModel
    tokenizer: Any
    teacher_path: Path | None
    chat_model: bool
    """The base came with a chat template of its own (before `prepare` gives a base model its family's)."""


@dataclass
class Settled:
    """The run settled for every process (batch split, length, what is held out) and its data tokenized by it."""

    config: RunConfig
    data: PreparedData
    fit: Fit | None
    """Auto-fit's choice with its memory plan (rank 0's; None on the other ranks)."""


@dataclass
class Model:
    """The model that trains, with what was measured of its base before training."""

    model: Any
    trainable: int
    total: int
    teacher: Any
    replayed: list[Any]
    """The base's own answers that train beside the data."""
    perplexity_before: float | None
    answers_before: list[str] | None
    """The base's everyday answers (None when not asked)."""


@dataclass
class Training:
    """The trainer with its callbacks, and what it trains on."""

    trainer: Any
    events: EventsCallback
    stop: GracefulStop
    eval_set: list[Any]
    split: bool
    """FSDP: each process holds only its shard of the weights."""


def _train(run: RunDir, config: RunConfig, hardware: Hardware, checkpoint: Any, echo: Callable[[str], None],
           extra_callbacks: Sequence[Any], accept_changes: bool) -> TrainResult:
    """Load the inputs, settle the run across processes, build the model and the trainer, train, finish."""
    from transformers import set_seed

    set_seed(config.seed)
    inputs = _load_inputs(run, config, checkpoint, echo, accept_changes)
    settled = _settle(run, config, inputs, hardware, checkpoint, echo)
    model = _build_model(settled.config, inputs, settled.data, hardware, echo)
    training = _build_trainer(run, settled, inputs, model, hardware, extra_callbacks, echo)
    if checkpoint is None and is_main_process():
        record(run, fingerprint(settled.config, inputs.model.path, inputs.teacher_path))
    started = time.perf_counter()
    training.stop.install()
    try:
        training.trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        training.stop.uninstall()
    if training.stop.requested:
        raise TrainingStopped(
            f"training stopped at step {training.trainer.state.global_step}; checkpoint saved",
            f"continue with `tuneforge train --resume {run.path}`",
        )
    return _finish(run, settled, inputs, model, training, time.perf_counter() - started, echo)


def _load_inputs(run: RunDir, config: RunConfig, checkpoint: Any, echo: Callable[[str], None], accept_changes: bool) -> Inputs:
    """The data (read before the model: a typo should not cost a download), the base (downloaded as the app shows)
    and its tokenizer, the teacher; a resume is checked against what its checkpoint was trained with."""
    loaded, eval_loaded = load_run_data(config)
    require_method_data(loaded, eval_loaded, config.method)

    def downloaded(done: int, total: int) -> None:  # shown by the app's run view while the model is fetched
        if is_main_process():
            run.record(Downloading(model=config.model, done_bytes=done, total_bytes=total))

    model_ref = resolve_base(config, on_download=downloaded)
    tokenizer = load_tokenizer(model_ref.path, config.trust_remote_code)
    teacher_path = check_training_inputs(config, model_ref, tokenizer)
    if checkpoint is not None and is_main_process():  # before any heavy work: is this still the run the checkpoint belongs to?
        check_resume(run, fingerprint(config, model_ref.path, teacher_path), accept_changes, echo)
        for name in discard_incomplete(run.checkpoints):
            echo(f"removed {name}: a checkpoint whose writing was cut short")
    return Inputs(loaded, eval_loaded, model_ref, tokenizer, teacher_path, bool(getattr(tokenizer, "chat_template", None)))


def _settle(run: RunDir, config: RunConfig, inputs: Inputs, hardware: Hardware, checkpoint: Any,
            echo: Callable[[str], None]) -> Settled:
    """Rank 0 settles the run for every process (they must agree on batch split and length) on the data as tokenized,
    checks the memory plan and saves config.yaml; the data is tokenized again when settling shortened it."""
    config = settle_eval_split(config, len(inputs.loaded.examples), inputs.loaded.shape)  # saved with the rest by rank 0
    data = prepare(inputs.loaded, inputs.tokenizer, DataRecipe.from_config(config), inputs.eval_loaded)
    fit = None
    if is_main_process():
        settled = settle_run(config, hardware, DataFacts.measured(data.stats, inputs.chat_model), model_shape(inputs.model.path),
                             refit=checkpoint is None, arch=inputs.model.arch)
        check_memory_plan(run, settled, hardware, inputs.model, echo, refuse=checkpoint is None)
        config, fit = run.save_config(settled.config), settled.fit
    if world_size(config) > 1:
        config = _settled_by_rank_zero(run, config, hardware)
    if config.max_length != data.stats.max_length:
        data = prepare(inputs.loaded, inputs.tokenizer, DataRecipe.from_config(config), inputs.eval_loaded)
    if data.stats.reasoning_dropped and is_main_process():
        message = (f"the chat template of {inputs.model.name} drops the reasoning traces of {data.stats.reasoning_dropped} "
                   "conversation(s): they are not learned")
        run.record(Warned(error=message, hint="train on a model whose template renders reasoning_content or <think> (e.g. Qwen3)"))
        echo(f"warning: {message}")
    if method_spec(config.method).prefers_only and not inputs.chat_model and is_main_process():
        message = (f"{inputs.model.name} is a base model given its family's chat template, and {config.method} only prefers "
                   "some answers to others: it will not learn to end its turn, so its GGUF will fail the chat check")
        run.record(Warned(error=message, hint="train it with SFT on the chosen answers first (then continue with adapter_from), "
                                              "or use --method orpo, whose loss includes SFT"))
        echo(f"warning: {message}")
    echo(f"data: {data.stats.train_examples} train / {data.stats.eval_examples} eval examples, "
         f"{data.stats.total_tokens} train tokens ({data.stats.trained_tokens} trained)")
    return Settled(config, data, fit)


def _build_model(config: RunConfig, inputs: Inputs, data: PreparedData, hardware: Hardware, echo: Callable[[str], None]) -> Model:
    """Load the base for the method; before it changes, measure what it knows (the forgetting probe) and ask its own
    answers (replay); then make it trainable, and load a distillation's teacher."""
    spec = method_spec(config.method)
    base = load_base_model(inputs.model, config.method, hardware, config.trust_remote_code, config.load_in_4bit)
    probe_forgetting = is_main_process() and config.forgetting_probe and spec.objective != "reward"
    perplexity_before = general_perplexity(base, inputs.tokenizer) if probe_forgetting else None
    # A base model without a chat template of its own has no everyday answers to keep (Gemma 3 270M answers 3 of 116
    # and runs on without ending its turn); asking costs more than its training: perplexity is its measure.
    answers_before = None
    if probe_forgetting and spec.weights in ("adapter", "whole") and inputs.chat_model:
        echo("forgetting probe: the base answers the everyday questions …")
        answers_before = base_answers(base, inputs.tokenizer, inputs.model.path)
    replayed = _replayed(config, base, inputs.tokenizer, inputs.model, data, echo) if config.replay else []
    model = make_trainable(base, config, inputs.model, bool(config.gradient_checkpointing))
    trainable = sum(parameter_count(p) for p in model.parameters() if p.requires_grad)
    total = sum(parameter_count(p) for p in model.parameters())
    method = f"{config.method} on a 4-bit base" if config.load_in_4bit and not spec.quantized_base else config.method
    echo(f"model: {inputs.model.name} ({method}), {trainable:,} trainable of {total:,} parameters on {hardware.device_label}")
    teacher = None
    if spec.objective == "distill":
        teacher = load_teacher(inputs.teacher_path, base.dtype, base.device, config.trust_remote_code)
        echo(f"teacher: {inputs.teacher_path} ({sum(p.numel() for p in teacher.parameters()):,} parameters)")
    return Model(model, trainable, total, teacher, replayed, perplexity_before, answers_before)


def _build_trainer(run: RunDir, settled: Settled, inputs: Inputs, model: Model, hardware: Hardware,
                   extra_callbacks: Sequence[Any], echo: Callable[[str], None]) -> Training:
    """The training and eval sets, the callbacks (events, stop, checkpoints, guards, recall) and the method's trainer."""
    config = settled.config
    train_set, eval_set = _training_sets(config, settled.data, model.teacher, inputs, echo)
    train_set = train_set + model.replayed
    events = EventsCallback(run, echo)
    stop = GracefulStop()
    args = training_arguments(run, config, hardware, bool(eval_set), bool(config.gradient_checkpointing), len(train_set))
    callbacks = [events, stop, CheckpointKeeper(run, config.save_total_limit), OverfitWatch(run, echo), *extra_callbacks]
    split = sharded(config, hardware)  # FSDP: each process holds only its shard of the weights and their gradients
    if not split:
        callbacks.insert(0, GradientGuard(silent_steps=method_spec(config.method).samples_answers))
    if config.stop_when_recalled:  # the data's answers: the replayed ones are the base's own, held by replay_kl
        callbacks.append(RecallStop(run, train_set[:len(train_set) - len(model.replayed)], echo))
    trainer = build_trainer(args, config, model.model, inputs.tokenizer, train_set, eval_set, callbacks, model.teacher, model.replayed)
    if method_spec(config.method).samples_answers:
        trainer.add_callback(SampledAnswers(run, trainer))
    return Training(trainer, events, stop, eval_set, split)


def _finish(run: RunDir, settled: Settled, inputs: Inputs, model: Model, training: Training, runtime_s: float,
            echo: Callable[[str], None]) -> TrainResult:
    """Measure the tuned model (held-out loss and accuracy, the forgetting probe), save it, and report the run's figures."""
    config, trainer, tokenizer = settled.config, training.trainer, inputs.tokenizer
    spec = method_spec(config.method)
    eval_loss = _final_eval_loss(trainer) if training.eval_set else None
    accuracy, accuracy_of = held_out_accuracy(trainer, spec.objective)
    perplexity_before = model.perplexity_before
    perplexity_after = general_perplexity(model.model, tokenizer) if perplexity_before is not None and not training.split else None
    if perplexity_before is not None and perplexity_after is not None:
        echo(f"general-text perplexity: {perplexity_before:.2f} before, {perplexity_after:.2f} after training")
    kept = None
    if model.answers_before is not None and not training.split:
        echo("forgetting probe: the tuned model answers the everyday questions …")  # a minute on a CPU: say so
        with lora_merged(model.model) as tuned:
            answers_after = model_answers(tuned, tokenizer)
        kept = compare_answers(general_questions(), model.answers_before, answers_after)
        write_answers(run.path / GENERAL_ANSWERS_FILE, model.answers_before, answers_after, kept)
        echo(f"forgetting probe: {kept.summary()}" + "".join(f"\n  lost: {item.question} → {item.after}" for item in kept.lost))
    # FSDP: every process hands in its shard of the whole weights; rank 0 receives them all.
    whole_weights = trainer.accelerator.get_state_dict(trainer.model_wrapped) if training.split else None
    if is_main_process():  # under DDP every process holds the same trained weights
        save_trained(run, model.model, tokenizer, inputs.model, spec.weights == "whole", whole_weights)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    rates = training.events.tokens_per_second[1:] or training.events.tokens_per_second  # the first step includes warm-up
    result = TrainResult(
        steps=trainer.state.global_step,
        final_loss=losses[-1] if losses else math.nan,
        eval_loss=eval_loss,
        runtime_s=round(runtime_s, 1),
        tokens_per_second=round(sum(rates) / max(len(rates), 1), 1),
        trainable_params=model.trainable,
        total_params=model.total,
        peak_memory_gb=round(peak_memory_gb(), 3),
        planned_peak_gb=round(settled.fit.plan.peak_gb, 3) if settled.fit else None,
        method=config.method,
        eval_accuracy=accuracy,
        accuracy_of=accuracy_of,
        general_perplexity_before=_round(perplexity_before),
        general_perplexity_after=_round(perplexity_after),
        general_known=kept.known if kept else None,
        general_kept=kept.kept if kept else None,
        replay_examples=len(model.replayed),
    )
    log_figures(trainer, {"peak_memory_gb": result.peak_memory_gb, "planned_peak_gb": result.planned_peak_gb,
                          "tokens_per_second": result.tokens_per_second, "general_perplexity_before": perplexity_before,
                          "general_perplexity_after": perplexity_after, "everyday_known": result.general_known,
                          "everyday_kept": result.general_kept})
    return result


def _settled_by_rank_zero(run: RunDir, config: RunConfig, hardware: Hardware) -> RunConfig:
    """Wait until rank 0 has settled config.yaml (batch split, length, early stopping); every rank trains with it."""
    from accelerate import PartialState

    PartialState(cpu=not hardware.cuda).wait_for_everyone()
    return config if is_main_process() else run.load_config()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _training_sets(config: RunConfig, data: PreparedData, teacher: Any, inputs: Inputs,
                   echo: Callable[[str], None]) -> tuple[list[Any], list[Any]]:
    """What the trainer consumes: tokenized answers (for distill, the teacher's own answers when asked, and
    its answers to the general prompts), or the pair or labelled Examples split as `prepare` splits them."""
    loaded, eval_loaded, tokenizer = inputs.loaded, inputs.eval_loaded, inputs.tokenizer
    if method_spec(config.method).takes_records:
        return train_and_eval(loaded, eval_loaded, config.eval_split, config.seed)
    if teacher is None:
        return data.train, data.eval
    train, evaluation = data.train, data.eval
    if config.distill_generate:
        train_examples, eval_examples = train_and_eval(loaded, eval_loaded, config.eval_split, config.seed)
        echo("distill: the teacher answers every training prompt …")
        answered = LoadedData(loaded.path, loaded.shape, teacher_answers(train_examples, teacher, tokenizer))
        regenerated = prepare(answered, tokenizer, DataRecipe.from_config(config).whole(),
                              LoadedData(loaded.path, loaded.shape, eval_examples) if eval_examples else None)
        train, evaluation = regenerated.train, regenerated.eval
    if config.distill_general:
        prompts = general_prompts()[:config.distill_general]
        echo(f"distill: the teacher answers {len(prompts)} general prompts …")
        general = general_examples(prompts, teacher, tokenizer)
        echo(f"distill: {len(general)} of its general answers ended their turn and are learned besides the data")
        if general:
            train = train + _tokenized(general, tokenizer, config)
    return train, evaluation


def _replayed(config: RunConfig, base: Any, tokenizer: Any, model_ref: ResolvedModel, data: PreparedData,
              echo: Callable[[str], None]) -> list[Any]:
    """The base's own answers that train beside the data (replay.py), tokenized, `config.replay` tokens of them
    for every token of the data; asked before the adapter wraps the base."""
    echo("replay: the base answers the replay prompts (once per base model) …")
    budget = round((config.replay or 0) * data.stats.total_tokens)

    def tokenized(examples: list[Any]) -> list[Any]:
        return _tokenized(examples, tokenizer, config) if examples else []

    # Tokenized as the data is, answers are asked for until they fill the budget: within_budget's pick is then final.
    own_answers = base_replay_examples(base, tokenizer, model_ref.path,
                                       enough=lambda so_far: sum(len(e.input_ids) for e in tokenized(so_far)) >= budget)
    answered = tokenized(own_answers)
    replayed = within_budget(answered, budget)
    echo(f"replay: {len(replayed)} of the base's own answers ({sum(len(e.input_ids) for e in replayed)} tokens, of "
         f"{len(answered)} that ended their turn) train beside the {data.stats.train_examples} examples "
         f"({data.stats.total_tokens} tokens)")
    return replayed


def _tokenized(general: list[Any], tokenizer: Any, config: RunConfig) -> list[Any]:
    """Conversations answered to the general prompts (replay, distill_general), tokenized as the data is."""
    return prepare(LoadedData(Path(GENERAL_PROMPTS), "messages", general), tokenizer, DataRecipe.from_config(config).whole()).train


def _final_eval_loss(trainer: Any) -> float:
    """Eval loss at the last step: the one the trainer just logged, else a fresh evaluation."""
    step = trainer.state.global_step
    logged = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e and e.get("step") == step]
    return logged[-1] if logged else trainer.evaluate()["eval_loss"]  # EventsCallback records a fresh one


def save_trained(run: RunDir, model: Any, tokenizer: Any, model_ref: ResolvedModel, whole_model: bool,
                 state_dict: dict[str, Any] | None = None) -> None:
    """Write the result atomically with its tokenizer (and the chat template training used):
    an adapter to RUN_DIR/adapter, or, for methods that train the model's own weights, the
    16-bit model to RUN_DIR/merged, where an adapter run's merge would put it."""
    import json

    target = run.merged if whole_model else run.adapter
    with atomic_directory(target) as staging:
        if whole_model:
            import torch
            from transformers import GenerationConfig

            from ..merge import generation_config, merge_dtype
            from ..sentencepiece_file import carry_sentencepiece_model

            dtype = getattr(torch, merge_dtype(model_ref.path))
            if state_dict is not None:  # gathered from the FSDP shards
                model.save_pretrained(staging, state_dict={k: v.to(dtype) for k, v in state_dict.items()}, safe_serialization=True)
            else:
                model.to(dtype).save_pretrained(staging, safe_serialization=True)
            generation_config(model_ref.path, tokenizer, GenerationConfig).save_pretrained(staging)
            carry_sentencepiece_model(model_ref.path, staging)
        else:
            model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / BASE_RECORD).write_text(
            json.dumps({"model": model_ref.name, "path": str(model_ref.path), "arch": model_ref.arch}, indent=2),
            encoding="utf-8",
        )
