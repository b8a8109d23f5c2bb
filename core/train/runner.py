"""Run one training job in a run directory: data → base + adapter → TRL SFT → adapter/."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from ..atomic import atomic_directory, atomic_write_text
from ..config import RunConfig
from ..data.formats import load_checked
from ..data.prepare import PreparedData, TokenizedExample, prepare
from ..errors import ConfigError, ResourceError, TuneforgeError
from ..hardware import Hardware, detect, resolve_method
from ..models import ResolvedModel, resolve_model
from ..runs import RunDir
from .callbacks import EventsCallback, GracefulStop, peak_memory_gb
from .setup import add_adapter, load_base_model, load_tokenizer


class TrainingStopped(TuneforgeError):
    """Training was stopped on request (Ctrl-C, SIGTERM, Stop in the UI) after a checkpoint."""

    exit_code = 130


@dataclass
class TrainResult:
    """The figures a finished run reports in its `finished` event."""

    steps: int
    final_loss: float
    eval_loss: float | None
    runtime_s: float
    tokens_per_second: float
    trainable_params: int
    total_params: int
    peak_memory_gb: float


def resolve_config(config: RunConfig, hardware: Hardware) -> RunConfig:
    """Settle `auto` choices for this machine so config.yaml records what actually runs."""
    updates: dict[str, Any] = {"method": resolve_method(config.method, hardware)}
    if config.gradient_checkpointing is None:
        updates["gradient_checkpointing"] = hardware.cuda
    return config.with_updates(**updates)


def train_run(run: RunDir, resume: bool = False, echo: Callable[[str], None] | None = print,
              callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train the run in `run` (or continue it from its last complete checkpoint with `resume`).

    `callbacks` are extra transformers TrainerCallbacks (observers for tests and tools).
    """
    config = run.load_config()
    hardware = detect(run.path)
    resolved = resolve_config(config, hardware)
    if resolved != config:
        atomic_write_text(run.config_file, resolved.to_yaml())
        config = resolved
    checkpoint = run.last_checkpoint()
    if resume and checkpoint is None:
        raise ConfigError(f"{run.path}: no complete checkpoint to resume from", f"start it again with `tuneforge train {run.path}`")
    if not resume and (checkpoint is not None or run.adapter.exists()):
        raise ConfigError(f"{run.path}: this run already trained", f"continue it with `tuneforge train --resume {run.path}`, or start a new run")
    log = _RunLog(run, echo)
    echo = log.line
    run.append_event(
        "started", pid=os.getpid(), method=config.method, model=config.model, device=hardware.device_label,
        resume_from=str(checkpoint) if resume else None,
    )
    try:
        result = _train(run, config, hardware, checkpoint if resume else None, echo, callbacks)
    except TrainingStopped as stopped:
        run.append_event("stopped", error=stopped.message, hint=stopped.hint)
        raise
    except TuneforgeError as exc:
        run.append_event("failed", error=exc.message, hint=exc.hint)
        raise
    except KeyboardInterrupt:
        run.append_event("stopped", error="aborted without a checkpoint", hint=f"resume from the last checkpoint with `tuneforge train --resume {run.path}`")
        raise
    except Exception as exc:
        log.traceback()
        foreseeable = _as_resource_error(exc, run)
        if foreseeable is None:
            run.append_event("failed", error=f"{type(exc).__name__}: {exc}", hint=f"see {run.log_file}")
            raise
        run.append_event("failed", error=foreseeable.message, hint=foreseeable.hint)
        raise foreseeable from exc
    finally:
        log.close()
    run.append_event("finished", **asdict(result))
    return result


def _as_resource_error(exc: Exception, run: RunDir) -> ResourceError | None:
    """Out of memory and a full disk are foreseeable: say so with what to change."""
    import errno

    resume = f"then continue with `tuneforge train --resume {run.path}` if a checkpoint was saved"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return ResourceError(
            "training ran out of memory",
            f"lower batch_size (raising grad_accum keeps the effective batch), max_length, or use --method qlora; {resume}",
        )
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return ResourceError(f"the disk holding {run.path} is full", f"free some space or lower save_total_limit; {resume}")
    return None


class _RunLog:
    """train.log: every progress line (also echoed to the caller) and the traceback of a crash."""

    def __init__(self, run: RunDir, echo: Callable[[str], None] | None) -> None:
        self._file = run.log_file.open("a", encoding="utf-8")
        self._echo = echo

    def line(self, text: str) -> None:
        self._file.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self._file.flush()
        if self._echo:
            self._echo(text)

    def traceback(self) -> None:
        import traceback

        traceback.print_exc(file=self._file)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _train(run: RunDir, config: RunConfig, hardware: Hardware, checkpoint: Any, echo: Callable[[str], None],
           extra_callbacks: Sequence[Any]) -> TrainResult:
    from transformers import set_seed

    set_seed(config.seed)
    loaded, eval_loaded = load_checked(config.data, config.eval_data, config.columns)  # before the model: a typo should not cost a download
    model_ref = resolve_model(config.model, config.trust_remote_code)
    tokenizer = load_tokenizer(model_ref.path, config.trust_remote_code)
    data = prepare(loaded, tokenizer, config.max_length, config.eval_split, config.seed, eval_loaded)
    echo(f"data: {data.stats.train_examples} train / {data.stats.eval_examples} eval examples, "
         f"{data.stats.total_tokens} train tokens ({data.stats.trained_tokens} trained)")
    gradient_checkpointing = bool(config.gradient_checkpointing)
    base = load_base_model(model_ref, config.method, hardware, config.trust_remote_code)
    model = add_adapter(base, config, model_ref, gradient_checkpointing)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    echo(f"model: {model_ref.name} ({config.method}), {trainable:,} trainable of {total:,} parameters on {hardware.device_label}")

    events = EventsCallback(run, echo)
    stop = GracefulStop()
    trainer = _build_trainer(run, config, hardware, model, tokenizer, data, [events, stop, *extra_callbacks], gradient_checkpointing)
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
    eval_loss = _final_eval_loss(trainer) if data.eval else None
    save_adapter(run, model, tokenizer, model_ref)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    rates = events.tokens_per_second[1:] or events.tokens_per_second  # the first step includes warm-up
    return TrainResult(
        steps=trainer.state.global_step,
        final_loss=losses[-1] if losses else math.nan,
        eval_loss=eval_loss,
        runtime_s=round(time.perf_counter() - started, 1),
        tokens_per_second=round(sum(rates) / max(len(rates), 1), 1),
        trainable_params=trainable,
        total_params=total,
        peak_memory_gb=round(peak_memory_gb(), 3),
    )


def _final_eval_loss(trainer: Any) -> float:
    """Eval loss at the last step: the one the trainer just logged, else a fresh evaluation."""
    step = trainer.state.global_step
    logged = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e and e.get("step") == step]
    return logged[-1] if logged else trainer.evaluate()["eval_loss"]  # EventsCallback records a fresh one


def _as_dataset(examples: list[TokenizedExample]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]})


def _build_trainer(run: RunDir, config: RunConfig, hardware: Hardware, model: Any, tokenizer: Any,
                   data: PreparedData, callbacks: list[Any], gradient_checkpointing: bool) -> Any:
    from transformers import EarlyStoppingCallback, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    has_eval = bool(data.eval)
    eval_strategy = ("steps" if config.eval_steps else "epoch") if has_eval else "no"
    early_stopping = has_eval and config.early_stopping_patience is not None
    save_strategy = "steps" if config.save_steps else "epoch"
    save_steps = config.save_steps or 500
    if early_stopping:  # the best checkpoint can only be kept when saves line up with evals
        save_strategy, save_steps = eval_strategy, config.eval_steps or 500
    args = SFTConfig(
        output_dir=str(run.checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        logging_steps=1,
        eval_strategy=eval_strategy,
        eval_steps=config.eval_steps,
        save_strategy=save_strategy,
        save_steps=save_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss" if early_stopping else None,
        greater_is_better=False if early_stopping else None,
        seed=config.seed,
        data_seed=config.seed,
        bf16=hardware.cuda and hardware.bf16,
        fp16=hardware.cuda and not hardware.bf16,
        use_cpu=not hardware.cuda,
        gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        max_length=config.max_length,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=hardware.cuda,
    )
    if early_stopping:
        callbacks = [*callbacks, EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)]
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=_as_dataset(data.train),
        eval_dataset=_as_dataset(data.eval) if has_eval else None,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    # EventsCallback prints the progress lines; the trainer's raw log dicts would repeat them.
    trainer.remove_callback(PrinterCallback)
    return trainer


def save_adapter(run: RunDir, model: Any, tokenizer: Any, model_ref: ResolvedModel) -> None:
    """Write the final adapter and the tokenizer (with the chat template training used) atomically."""
    import json

    with atomic_directory(run.adapter) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "tuneforge-base.json").write_text(
            json.dumps({"model": model_ref.name, "path": str(model_ref.path), "arch": model_ref.arch}, indent=2),
            encoding="utf-8",
        )
