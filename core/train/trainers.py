"""One TRL trainer per objective, all sharing tuneforge's training arguments.

sft and distill train on tokenized answers (SFTTrainer, or its distillation subclass);
dpo, orpo, simpo and reward train on chosen/rejected pairs (DPOTrainer, ORPOTrainer, CPOTrainer, RewardTrainer);
kto on answers labelled good or bad (KTOTrainer); grpo on prompts, sampling and rewarding its own answers (grpo.py).
"""

from __future__ import annotations

import os
from typing import Any

from ..config import RunConfig
from ..data.prepare import TokenizedExample
from ..data.records import Example
from ..hardware import Hardware
from ..methods import method_spec
from ..runs import RunDir
from ..tracking import tracking_arguments
from .speed import length_grouping, project_answers_only

ACCURACY_KEYS = {
    "sft": ("eval_mean_token_accuracy", "token accuracy"),
    "distill": ("eval_mean_token_accuracy", "token accuracy"),
    "dpo": ("eval_rewards/accuracies", "pair accuracy"),
    "orpo": ("eval_rewards/accuracies", "pair accuracy"),
    "simpo": ("eval_rewards/accuracies", "pair accuracy"),
    "reward": ("eval_accuracy", "pair accuracy"),
}
"""Where each trainer logs its held-out accuracy, and what that accuracy measures."""


def training_arguments(run: RunDir, config: RunConfig, hardware: Hardware, has_eval: bool,
                       gradient_checkpointing: bool, train_examples: int = 0) -> dict[str, Any]:
    """The TrainingArguments every objective shares: schedule, evaluation, checkpoints, precision,
    and length-grouped batches for tokenized SFT data of `train_examples`."""
    tokenized = method_spec(config.method).objective in ("sft", "distill")  # pairs have no input_ids to sort by
    eval_strategy = ("steps" if config.eval_steps else "epoch") if has_eval else "no"
    early_stopping = has_eval and bool(config.early_stopping_patience)
    save_strategy = "steps" if config.save_steps else "epoch"
    save_steps = config.save_steps or 500
    if early_stopping:  # the best checkpoint can only be kept when saves line up with evals
        save_strategy, save_steps = eval_strategy, config.eval_steps or 500
    return dict(
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
        save_total_limit=None,  # CheckpointKeeper deletes old checkpoints, only once a new one is complete
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss" if early_stopping else None,
        greater_is_better=False if early_stopping else None,
        seed=config.seed,
        data_seed=config.seed,
        bf16=hardware.compute_dtype == "bfloat16",  # autocast, on a GPU or a CPU with bf16 matrix units
        fp16=hardware.compute_dtype == "float16",
        use_cpu=not hardware.cuda,
        activation_checkpointing=gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False, "every_n_layers": config.checkpoint_every or 1}
        if gradient_checkpointing else None,
        # Packed rows have no padding to leave out of the count (without an attention mask, "non_padding" would drop
        # every token equal to the pad token, the end of turn in many vocabularies), nor any to save by sorting.
        include_num_input_tokens_seen="all" if config.padding_free else "non_padding",
        **tracking_arguments(config.report_to, run.name),
        disable_tqdm=True,
        dataloader_pin_memory=hardware.cuda,
        ddp_find_unused_parameters=False if config.processes * config.nodes > 1 else None,  # every trained weight gets a gradient
        **(length_grouping(train_examples, config.batch_size) if tokenized and not config.padding_free else {}),
    )


def tokenized_dataset(examples: list[TokenizedExample]) -> Any:
    """Pre-tokenized ids and labels, which SFTTrainer takes as they are."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]})


def pairs_dataset(examples: list[Example]) -> Any:
    """Chosen/rejected pairs in TRL's conversational form (the trainers apply the chat template)."""
    from datasets import Dataset

    rows = [
        {
            "prompt": (e.messages or [])[:-1],
            "chosen": (e.messages or [])[-1:],
            "rejected": [{"role": "assistant", "content": e.rejected or ""}],
        }
        for e in examples
    ]
    return Dataset.from_list(rows)


def labelled_rows(examples: list[Example], seed: int) -> list[dict[str, Any]]:
    """Answers labelled good or bad in TRL's unpaired form (prompt, completion, label), a pair giving one of each,
    shuffled once: KTO's trainer reads its rows in order (each row's KL estimate uses its neighbour's prompt)."""
    import random

    rows = []
    for e in examples:
        prompt, answer = (e.messages or [])[:-1], (e.messages or [])[-1:]
        if e.rejected is not None:
            rows.append({"prompt": prompt, "completion": answer, "label": True})
            rows.append({"prompt": prompt, "completion": [{"role": "assistant", "content": e.rejected}], "label": False})
        else:
            rows.append({"prompt": prompt, "completion": answer, "label": bool(e.label)})
    random.Random(seed).shuffle(rows)
    return rows


def kto_weights(labels: list[bool]) -> tuple[float, float]:
    """KTO's weights on good and bad answers: 1 and 1 while good answers number 1 to 4/3 times the bad ones (its
    authors' range); otherwise the good answers' weight brings their total level with the bad ones'."""
    good, bad = sum(labels), len(labels) - sum(labels)
    if not good or not bad or 1 <= good / bad <= 4 / 3:
        return 1.0, 1.0
    return bad / good, 1.0


def build_trainer(args: dict[str, Any], config: RunConfig, model: Any, tokenizer: Any, train: list[Any],
                  evaluation: list[Any], callbacks: list[Any], teacher: Any = None, replayed: list[Any] = ()) -> Any:
    """The trainer for `config.method`'s objective; `train`/`evaluation` are tokenized examples
    (sft, distill) or pair, labelled and prompt Examples (dpo, orpo, simpo, kto, reward, grpo); `replayed`, the replayed examples
    among `train`."""
    from transformers import EarlyStoppingCallback, PrinterCallback

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO lives in trl.experimental; the warning says nothing to a user
    project_answers_only()
    objective = method_spec(config.method).objective
    if args["load_best_model_at_end"]:
        callbacks = [*callbacks, EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)]
    common = dict(model=model, processing_class=tokenizer, callbacks=callbacks)
    if objective in ("sft", "distill"):
        from trl import SFTConfig

        datasets = dict(train_dataset=tokenized_dataset(train), eval_dataset=tokenized_dataset(evaluation) if evaluation else None)
        # Examples come tokenized and cut to max_length; TRL enforces max_length only on padded batches.
        sft_args = SFTConfig(**args, padding_free=bool(config.padding_free), max_length=None if config.padding_free else config.max_length)
        if objective == "sft" and config.replay_kl and replayed:
            from .replay_kl import ReplayKLTrainer

            trainer = ReplayKLTrainer(args=sft_args, **datasets, **common, weight=config.replay_kl,
                                      replayed=[tuple(e.input_ids) for e in replayed])
        elif objective == "sft":
            from trl import SFTTrainer

            trainer = SFTTrainer(args=sft_args, **datasets, **common)
        else:
            from .distill import DistillTrainer

            trainer = DistillTrainer(args=sft_args, **datasets, **common, teacher=teacher,
                                     temperature=config.distill_temperature, weight=config.distill_weight)
    elif objective == "grpo":
        from .grpo import build_grpo_trainer

        trainer = build_grpo_trainer(args, config, model, tokenizer, train, evaluation, common)
    elif objective == "kto":
        from datasets import Dataset
        from trl import KTOConfig, KTOTrainer

        rows = labelled_rows(train, config.seed)
        good, bad = kto_weights([row["label"] for row in rows])
        evaluation_rows = labelled_rows(evaluation, config.seed) if evaluation else None
        # With a peft model and no ref_model, the reference is the same model with its adapter off.
        trainer = KTOTrainer(args=KTOConfig(**args, beta=config.beta, max_length=config.max_length, desirable_weight=good,
                                            undesirable_weight=bad),
                             train_dataset=Dataset.from_list(rows),
                             eval_dataset=Dataset.from_list(evaluation_rows) if evaluation_rows else None, **common)
    else:
        datasets = dict(train_dataset=pairs_dataset(train), eval_dataset=pairs_dataset(evaluation) if evaluation else None)
        if objective == "dpo":
            from trl import DPOConfig, DPOTrainer

            # With a peft model and no ref_model, the reference is the same model with its adapter off.
            trainer = DPOTrainer(args=DPOConfig(**args, beta=config.beta, max_length=config.max_length), **datasets, **common)
        elif objective == "orpo":
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            trainer = ORPOTrainer(args=ORPOConfig(**args, beta=config.beta, max_length=config.max_length), **datasets, **common)
        elif objective == "simpo":
            from trl.experimental.cpo import CPOConfig, CPOTrainer

            # CPO's trainer with the SimPO loss and no behaviour-cloning term (cpo_alpha 0) is SimPO as its paper has it.
            trainer = CPOTrainer(args=CPOConfig(**args, loss_type="simpo", cpo_alpha=0.0, beta=config.beta,
                                                max_length=config.max_length), **datasets, **common)
        else:
            from trl import RewardConfig, RewardTrainer

            trainer = RewardTrainer(args=RewardConfig(**args, max_length=config.max_length), **datasets, **common)
    # EventsCallback prints the progress lines; the trainer's raw log dicts would repeat them.
    trainer.remove_callback(PrinterCallback)
    return trainer


def held_out_accuracy(trainer: Any, objective: str) -> tuple[float | None, str | None]:
    """The last logged held-out accuracy and what it measures (None without eval data)."""
    if objective not in ACCURACY_KEYS:  # KTO's answers come one at a time: there is no pair to rank
        return None, None
    key, kind = ACCURACY_KEYS[objective]
    values = [entry[key] for entry in trainer.state.log_history if key in entry]
    return (round(float(values[-1]), 4), kind) if values else (None, None)
