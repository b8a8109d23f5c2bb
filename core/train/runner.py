"""Run one training job in a run directory: data → base made trainable for the method → TRL trainer → adapter/ or merged/."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..accelerate_setup import sharded, world_size
from ..allocator import allocator_in_use
from ..atomic import atomic_directory, is_disk_full
from ..checkpoint_folders import discard_incomplete
from ..config import RunConfig
from ..data.formats import LoadedData, load_run_data
from ..data.prepare import PreparedData, prepare, train_and_eval
from ..errors import ModelError, ResourceError, TrainingStopped, TuneforgeError
from ..events import Downloading, Failed, Finished, Started, Stopped, TrainResult, Warned
from ..general_answers import RESULT_FILE as GENERAL_ANSWERS_FILE
from ..general_answers import base_answers, compare_answers, general_questions, model_answers, write_answers
from ..hardware import Hardware, detect, resolve_method
from ..jobs import oom_kills
from ..memory import model_shape
from ..methods import method_spec
from ..models import ResolvedModel, resolve_base
from ..rank import is_main_process, process_rank
from ..runs import BASE_RECORD, RunDir
from ..settle import DataFacts, require_pairs, settle_eval_split, settle_run
from ..tracking import log_figures
from .callbacks import EventsCallback, GracefulStop, peak_memory_gb
from .checkpoints import CheckpointKeeper
from .distill import load_teacher, teacher_answers
from .guards import CUT_OFF_HINT, NO_GRAPH, GradientGuard, OverfitWatch, general_perplexity
from .planning import check_memory_plan
from .preflight import check_training_inputs
from .recall import RecallStop
from .replay import GENERAL_PROMPTS, base_replay_examples, general_examples, general_prompts, within_budget
from .resume import check_resume, fingerprint, record
from .setup import load_base_model, load_tokenizer, make_trainable, parameter_count
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
        foreseeable = _as_foreseeable(exc, run)
        if foreseeable is None:
            run.record(Failed(error=f"{type(exc).__name__}: {exc}", hint=f"see {run.log_file}"))
            raise
        run.record(Failed(error=foreseeable.message, hint=foreseeable.hint))
        raise foreseeable from exc
    finally:
        log.close()
    run.record(Finished(result=result))
    return result


def _as_foreseeable(exc: Exception, run: RunDir) -> TuneforgeError | None:
    """Out of memory, a full disk and a model whose trained parts are all cut off from the loss are foreseeable:
    say so with what to change."""
    if isinstance(exc, RuntimeError) and NO_GRAPH in str(exc):
        return ModelError("no trained part of the model takes part in the loss: training would change nothing", CUT_OFF_HINT)
    resume = f"then continue with `tuneforge train --resume {run.path}` if a checkpoint was saved"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return ResourceError(
            "training ran out of memory",
            f"lower batch_size (raising grad_accum keeps the effective batch), max_length, or use --method qlora; {resume}",
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


def _train(run: RunDir, config: RunConfig, hardware: Hardware, checkpoint: Any, echo: Callable[[str], None],
           extra_callbacks: Sequence[Any], accept_changes: bool) -> TrainResult:
    from transformers import set_seed

    set_seed(config.seed)
    spec = method_spec(config.method)
    loaded, eval_loaded = load_run_data(config)  # before the model: a typo should not cost a download
    if spec.pairs_data:
        require_pairs(loaded, eval_loaded, config.method)
    def downloaded(done: int, total: int) -> None:  # shown by the app's run view while the model is fetched
        if is_main_process():
            run.record(Downloading(model=config.model, done_bytes=done, total_bytes=total))

    model_ref = resolve_base(config, on_download=downloaded)
    tokenizer = load_tokenizer(model_ref.path, config.trust_remote_code)
    teacher, teacher_path = None, check_training_inputs(config, model_ref, tokenizer)
    main = is_main_process()
    if checkpoint is not None and main:  # before any heavy work: is this still the run the checkpoint belongs to?
        check_resume(run, fingerprint(config, model_ref.path, teacher_path), accept_changes, echo)
        for name in discard_incomplete(run.checkpoints):
            echo(f"removed {name}: a checkpoint whose writing was cut short")
    chat_model = bool(getattr(tokenizer, "chat_template", None))  # before prepare gives a base model its family's
    config = settle_eval_split(config, len(loaded.examples), loaded.shape)  # saved with the rest by rank 0 below
    data = prepare(loaded, tokenizer, config.max_length, config.eval_split, config.seed, eval_loaded, config.train_reasoning,
                   config.chat_template)
    fit = None
    if main:  # rank 0 settles the run for every process: they must agree on batch split and length
        settled = settle_run(config, hardware, DataFacts.measured(data.stats, chat_model), model_shape(model_ref.path),
                             refit=checkpoint is None, arch=model_ref.arch)
        check_memory_plan(run, settled, hardware, model_ref, echo, refuse=checkpoint is None)
        config, fit = run.save_config(settled.config), settled.fit
    if world_size(config) > 1:
        config = _settled_by_rank_zero(run, config, hardware)
    if config.max_length != data.stats.max_length:
        data = prepare(loaded, tokenizer, config.max_length, config.eval_split, config.seed, eval_loaded, config.train_reasoning,
                   config.chat_template)
    if data.stats.reasoning_dropped and main:
        message = (f"the chat template of {model_ref.name} drops the reasoning traces of {data.stats.reasoning_dropped} "
                   "conversation(s): they are not learned")
        run.record(Warned(error=message, hint="train on a model whose template renders reasoning_content or <think> (e.g. Qwen3)"))
        echo(f"warning: {message}")
    echo(f"data: {data.stats.train_examples} train / {data.stats.eval_examples} eval examples, "
         f"{data.stats.total_tokens} train tokens ({data.stats.trained_tokens} trained)")
    gradient_checkpointing = bool(config.gradient_checkpointing)
    base = load_base_model(model_ref, config.method, hardware, config.trust_remote_code)
    probe_forgetting = main and config.forgetting_probe and spec.objective != "reward"
    perplexity_before = general_perplexity(base, tokenizer) if probe_forgetting else None
    # A base model without a chat template of its own has no everyday answers to keep (Gemma 3 270M answers 3 of 116
    # and runs on without ending its turn); asking costs more than its training: perplexity is its measure.
    ask_everyday = probe_forgetting and spec.weights in ("adapter", "whole") and chat_model
    if ask_everyday:
        echo("forgetting probe: the base answers the everyday questions …")
        answers_before = base_answers(base, tokenizer, model_ref.path)
    replayed = _replayed(config, base, tokenizer, model_ref, data, echo) if config.replay else []
    model = make_trainable(base, config, model_ref, gradient_checkpointing)
    trainable = sum(parameter_count(p) for p in model.parameters() if p.requires_grad)
    total = sum(parameter_count(p) for p in model.parameters())
    echo(f"model: {model_ref.name} ({config.method}), {trainable:,} trainable of {total:,} parameters on {hardware.device_label}")
    if spec.objective == "distill":
        teacher = load_teacher(teacher_path, base.dtype, base.device, config.trust_remote_code)
        echo(f"teacher: {teacher_path} ({sum(p.numel() for p in teacher.parameters()):,} parameters)")
    train_set, eval_set = _training_sets(config, data, loaded, eval_loaded, teacher, tokenizer, echo)
    train_set = train_set + replayed

    events = EventsCallback(run, echo)
    stop = GracefulStop()
    args = training_arguments(run, config, hardware, bool(eval_set), gradient_checkpointing, len(train_set))
    callbacks = [events, stop, CheckpointKeeper(run, config.save_total_limit), OverfitWatch(run, echo), *extra_callbacks]
    split = sharded(config, hardware)  # FSDP: each process holds only its shard of the weights and their gradients
    if not split:
        callbacks.insert(0, GradientGuard())
    if config.stop_when_recalled:  # the data's answers: the replayed ones are the base's own, held by replay_kl
        callbacks.append(RecallStop(run, train_set[:len(train_set) - len(replayed)], echo))
    trainer = build_trainer(args, config, model, tokenizer, train_set, eval_set, callbacks, teacher, replayed)
    if checkpoint is None and main:
        record(run, fingerprint(config, model_ref.path, teacher_path))
    started = time.perf_counter()
    stop.install()
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        stop.uninstall()
    if stop.requested:
        raise TrainingStopped(
            f"training stopped at step {trainer.state.global_step}; checkpoint saved",
            f"continue with `tuneforge train --resume {run.path}`",
        )
    eval_loss = _final_eval_loss(trainer) if eval_set else None
    accuracy, accuracy_of = held_out_accuracy(trainer, spec.objective)
    perplexity_after = general_perplexity(model, tokenizer) if probe_forgetting and not split else None
    if perplexity_before is not None and perplexity_after is not None:
        echo(f"general-text perplexity: {perplexity_before:.2f} before, {perplexity_after:.2f} after training")
    kept = None
    if ask_everyday and not split:
        echo("forgetting probe: the tuned model answers the everyday questions …")  # a minute on a CPU: say so
        answers_after = model_answers(model, tokenizer)
        kept = compare_answers(general_questions(), answers_before, answers_after)
        write_answers(run.path / GENERAL_ANSWERS_FILE, answers_before, answers_after, kept)
        echo(f"forgetting probe: {kept.summary()}" + "".join(f"\n  lost: {item.question} → {item.after}" for item in kept.lost))
    # FSDP: every process hands in its shard of the whole weights; rank 0 receives them all.
    whole_weights = trainer.accelerator.get_state_dict(trainer.model_wrapped) if split else None
    if main:  # under DDP every process holds the same trained weights
        save_trained(run, model, tokenizer, model_ref, spec.weights == "whole", whole_weights)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    rates = events.tokens_per_second[1:] or events.tokens_per_second  # the first step includes warm-up
    result = TrainResult(
        steps=trainer.state.global_step,
        final_loss=losses[-1] if losses else math.nan,
        eval_loss=eval_loss,
        runtime_s=round(time.perf_counter() - started, 1),
        tokens_per_second=round(sum(rates) / max(len(rates), 1), 1),
        trainable_params=trainable,
        total_params=total,
        peak_memory_gb=round(peak_memory_gb(), 3),
        planned_peak_gb=round(fit.plan.peak_gb, 3) if fit else None,
        method=config.method,
        eval_accuracy=accuracy,
        accuracy_of=accuracy_of,
        general_perplexity_before=_round(perplexity_before),
        general_perplexity_after=_round(perplexity_after),
        general_known=kept.known if kept else None,
        general_kept=kept.kept if kept else None,
        replay_examples=len(replayed),
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


def _training_sets(config: RunConfig, data: PreparedData, loaded: LoadedData, eval_loaded: LoadedData | None,
                   teacher: Any, tokenizer: Any, echo: Callable[[str], None]) -> tuple[list[Any], list[Any]]:
    """What the trainer consumes: tokenized answers (for distill, the teacher's own answers when asked, and
    its answers to the general prompts), or the pair Examples split as `prepare` splits them."""
    if method_spec(config.method).pairs_data:
        return train_and_eval(loaded, eval_loaded, config.eval_split, config.seed)
    if teacher is None:
        return data.train, data.eval
    train, evaluation = data.train, data.eval
    if config.distill_generate:
        train_examples, eval_examples = train_and_eval(loaded, eval_loaded, config.eval_split, config.seed)
        echo("distill: the teacher answers every training prompt …")
        answered = LoadedData(loaded.path, loaded.shape, teacher_answers(train_examples, teacher, tokenizer))
        regenerated = prepare(answered, tokenizer, config.max_length, 0.0, config.seed,
                              LoadedData(loaded.path, loaded.shape, eval_examples) if eval_examples else None,
                              chat_template=config.chat_template)
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
    return prepare(LoadedData(Path(GENERAL_PROMPTS), "messages", general), tokenizer, config.max_length, 0.0, config.seed,
                   chat_template=config.chat_template).train


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
