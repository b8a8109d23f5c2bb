"""Settling a run's config: every choice left to tuneforge, made once, in one place.

A config as a person writes it leaves choices open: `method: auto`, no learning rate, early
stopping and gradient checkpointing unset, a batch that may not fit. Settling makes them for
this machine, this model and this data — the method `auto` means here, its learning rate (for the
architecture), the
batch split, checkpointing and max length auto-fit finds (with its memory plan), and early
stopping for a small dataset — so config.yaml records what actually runs. `tuneforge plan`,
`create_run`, the app's Train form and the training child all settle through `settle_run`;
they differ only in what they know of the data (the child has tokenized it; the form guesses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .accelerate_setup import sharded
from .catalog import architecture
from .config import (
    DEFAULT_EPOCHS,
    DEFAULT_EVAL_SPLIT,
    DEFAULT_PATIENCE,
    REPLAY_KL,
    REPLAY_RATIO,
    SMALL_DATA_MAX_EPOCHS,
    SMALL_DATASET,
    RunConfig,
)
from .data.prepare import PLAIN_TEXT_SHAPES
from .errors import DataError
from .hardware import Hardware, resolve_method
from .methods import method_spec, trains_lora
from .rewards import sampling_note
from .train.replay import GENERAL_ANSWER_TOKENS, REPLAY_PROMPT_TOKENS, replay_prompts

if TYPE_CHECKING:
    from .catalog import Shape
    from .data.formats import LoadedData
    from .data.prepare import DataStats
    from .fit import Fit


@dataclass(frozen=True)
class DataFacts:
    """What settling needs to know of the data."""

    lengths: Sequence[int]
    """Token length of every training example (auto-fit plans for the longest)."""
    answer_share: float = 0.5
    """The share of tokens that are trained (answers): the logits' memory scales with it."""
    train_examples: int | None = None
    """How many examples train; None when not known yet, which leaves the epochs and stopping open."""
    has_eval: bool = False
    answers: bool = True
    """The examples end in answers (chat data), which can be recalled; False for documents."""
    chat_model: bool = True
    """The model has a chat template of its own; False for a base model given its family's, which has no chat
    behaviour to keep (asked a question, it runs on without ending its turn)."""

    @classmethod
    def measured(cls, stats: DataStats, chat_model: bool = True) -> DataFacts:
        """The facts of a tokenized dataset (for a model with or without a chat template of its own)."""
        return cls(stats.token_lengths, stats.answer_share, stats.train_examples, stats.eval_examples > 0,
                   stats.shape not in PLAIN_TEXT_SHAPES, chat_model)

    @classmethod
    def assumed(cls, config: RunConfig) -> DataFacts:
        """No data at hand: every example max_length long, half of it answer."""
        return cls([config.max_length])


@dataclass(frozen=True)
class SettledRun:
    """A settled config, the fit (with its memory plan) it came from, and what was decided, in words."""

    config: RunConfig
    fit: Fit | None
    """None when the model's dimensions are unknown: it trains as configured, without a plan."""
    params_b: float | None = None
    """The model's parameters in billions, when its dimensions are known."""
    notes: tuple[str, ...] = ()
    """Every choice made, in words, the changes first."""
    changes: tuple[str, ...] = ()
    """What settling changed in the batch, its split, checkpointing or length, in words (auto-fit's, and a batch
    larger than the data)."""


def resolve_choices(config: RunConfig, hardware: Hardware, arch: str | None = None) -> RunConfig:
    """The choices that depend on the machine and the model's architecture (transformers' `model_type`,
    when known): the method `auto` means here and its learning rate; without auto-fit, checkpointing
    on for a GPU (where the method allows it)."""
    method = resolve_method(config.method, hardware)
    updates: dict[str, Any] = {"method": method}
    if config.learning_rate is None:
        updates["learning_rate"] = default_learning_rate(method, arch)
    if config.beta is None and method_spec(method).beta is not None:
        updates["beta"] = method_spec(method).beta
    if config.gradient_checkpointing is None and not config.auto_fit:
        updates["gradient_checkpointing"] = hardware.cuda and method_spec(method).can_checkpoint
    return config.with_updates(**updates)


def default_learning_rate(method: str, arch: str | None = None) -> float:
    """The method's small-dataset learning rate, scaled for an architecture whose adapters want a lower
    one (catalog.Architecture.adapter_learning_rate_scale: measured with bench/defaults.py)."""
    rate = method_spec(method).learning_rate
    return rate * architecture(arch).adapter_learning_rate_scale if trains_lora(method) else rate


def settle_run(config: RunConfig, hardware: Hardware, data: DataFacts | None, dims: tuple[float, Shape] | None,
               refit: bool = True, arch: str | None = None) -> SettledRun:
    """Settle every open choice of `config` for `hardware` and `data`.

    Without `data` (a run being created, its data not tokenized yet) only the machine's choices
    are made and the rest stays open for the training child. `dims` are the model's parameters
    (billions) and shape (`memory.model_shape`); without them nothing is planned and the run
    trains as configured. `refit=False` (a resume) keeps the batch split its checkpoint was
    trained with and only plans it. `arch` (the model's `model_type`) sets the learning rate of an
    architecture that wants its own.
    """
    from .fit import settle

    config = resolve_choices(config, hardware, arch)
    if data is None:
        return SettledRun(config, None)
    notes: list[str] = []
    fit = None
    replay_open = config.replay is None
    config = settle_padding(settle_replay(config, data), hardware)
    config, change = settle_batch(config, data)
    changes = [change] if change else []
    if dims is None:
        config = config.with_updates(gradient_checkpointing=bool(config.gradient_checkpointing))
    else:
        lengths = [*data.lengths, REPLAY_PROMPT_TOKENS + GENERAL_ANSWER_TOKENS] if config.replay else data.lengths
        fit = settle(config if refit else config.with_updates(auto_fit=False), hardware, *dims, lengths,
                     data.answer_share)
        changes += fit.changes
        config = config.with_updates(batch_size=fit.batch_size, grad_accum=fit.grad_accum,
                                     gradient_checkpointing=fit.gradient_checkpointing,
                                     checkpoint_every=fit.checkpoint_every if fit.gradient_checkpointing else config.checkpoint_every,
                                     max_length=fit.max_length if fit.truncated else config.max_length)
    notes += [f"auto-fit: {change}" for change in changes]
    if data.train_examples is not None:
        config, note = settle_stopping(config, data, can_check=not sharded(config, hardware))
        notes += [note] if note else []
        if replay_open and config.replay:
            held = f", held to the base's own distributions by a KL term (replay_kl {config.replay_kl:g})" if config.replay_kl else ""
            recall = f"; it trains until every answer is recalled (up to {config.epochs:g} epochs)" if config.stop_when_recalled else ""
            notes.append(f"small dataset: replay — the base model's own answers to general prompts train beside the data "
                         f"({config.replay:g} token per token of data){held}, so it keeps what it knew{recall} "
                         "(replay: 0 turns it off)")
        if method_spec(config.method).samples_answers:
            notes.append(sampling_note(config.rewards, config.num_generations, config.max_completion_length,
                                       config.batch_size * config.grad_accum))
        if data.has_eval and not config.eval_data and config.stop_when_recalled:
            notes.append(f"the eval split holds out {config.eval_split:.0%} of the examples, which do not train: for a set of "
                         "facts, set eval_split: 0 or give eval_data (questions asked another way)")
    return SettledRun(config, fit, dims[0] if dims else None, tuple(notes), tuple(changes))


def settle_eval_split(config: RunConfig, examples: int, shape: str) -> RunConfig:
    """How much of the data is held out, for data of `examples` examples of `shape` read but not yet split:
    `eval_split: None` holds nothing out of a dataset of answers under SMALL_DATASET examples trained by SFT,
    unless early stopping on eval loss is asked for (or the recall stop refused). Such a dataset is a set of
    things to learn: a held-out fact is one the model never sees (bench/defaults.py: 3 of 24 facts lost),
    and the recall stop, not an eval loss on other facts, says when to stop. GRPO holds nothing out either: its
    measure is the reward of what it samples while it trains, and held-out prompts would be sampled again at every
    evaluation. Anything else holds out DEFAULT_EVAL_SPLIT."""
    if config.eval_split is not None:
        return config
    answers = shape not in PLAIN_TEXT_SHAPES and shape != "pairs"
    learn_all = (answers and examples < SMALL_DATASET and method_spec(config.method).objective in ("sft", "distill")
                 and not config.early_stopping_patience and config.stop_when_recalled is not False)
    learn_all = learn_all or (method_spec(config.method).samples_answers and not config.early_stopping_patience)
    return config.with_updates(eval_split=0.0 if learn_all else DEFAULT_EVAL_SPLIT)


def settle_replay(config: RunConfig, data: DataFacts) -> RunConfig:
    """How the base's own answers train beside the data (train/replay.py): `replay: None` means REPLAY_RATIO
    for a small dataset of answers trained by SFT into a chat model, and none otherwise (a base model's answers
    to the replay prompts do not end, so there is nothing to replay); `replay_kl: None` means REPLAY_KL
    wherever replay is on and the model has an adapter to switch off (in one process), else plain answers.
    bench/defaults.py measured both: see the README (Learning new facts and keeping what it knew)."""
    if data.train_examples is None:
        return config
    updates: dict[str, Any] = {}
    replay = config.replay
    if replay is None:
        small = data.answers and data.train_examples < SMALL_DATASET
        wanted = small and data.chat_model and method_spec(config.method).objective == "sft"
        replay = updates["replay"] = REPLAY_RATIO if wanted else 0.0
    if config.replay_kl is None:
        adapter = method_spec(config.method).weights == "adapter" and config.processes * config.nodes == 1
        # the KL term compares rows, which padding-free batches do not have
        updates["replay_kl"] = REPLAY_KL if replay and adapter and not config.padding_free else 0.0
    return config.with_updates(**updates) if updates else config


def settle_batch(config: RunConfig, data: DataFacts) -> tuple[RunConfig, str | None]:
    """A batch no larger than the examples that train, and the change in words when one was made.

    A micro-batch past the whole training set (the data, plus at most one replayed answer per replay prompt and
    one per general prompt a distill run adds) is never filled: each step takes every example, one step an
    epoch, which batch_size = that many with grad_accum 1 trains identically, and the memory plan then prices
    the batch that can happen instead of one that cannot (batch 512 on 32 examples planned 512 rows)."""
    if data.train_examples is None:
        return config, None
    extra = (len(replay_prompts()) if config.replay else 0) + (config.distill_general or 0)
    most = data.train_examples + extra
    if config.batch_size <= most:
        return config, None
    besides = f" and up to {extra} added answers" if extra else ""
    note = (f"batch_size {config.batch_size} is more than the {data.train_examples} training examples{besides}: "
            f"each step takes them all, one step an epoch (planned as batch {most})")
    return config.with_updates(batch_size=most, grad_accum=1), note


def settle_padding(config: RunConfig, hardware: Hardware) -> RunConfig:
    """`padding_free: None` means on for a GPU where the method's batches may be packed and no replay_kl compares
    their rows (decided once replay_kl is); off on a CPU, where it measured no faster (the default model, 20 steps of
    batch 8 without replay: 365–407 tokens/s packed, 373–390 padded) and one row's attention grows with the batch."""
    if config.padding_free is not None or config.replay_kl is None:
        return config
    packable = method_spec(config.method).can_pack and not config.replay_kl
    return config.with_updates(padding_free=hardware.cuda and packable)


def settle_stopping(config: RunConfig, data: DataFacts, can_check: bool = True) -> tuple[RunConfig, str | None]:
    """How long the run trains, for data whose size is known, and the choice in words when one was made.

    By default 6 epochs, with early stopping on eval loss (patience 3) for a small dataset with eval
    data. `stop_when_recalled` trains a small dataset of answers until every answer comes back word for
    word, up to SMALL_DATA_MAX_EPOCHS passes; left open, it is on where replay_kl holds the model to its
    base. bench/defaults.py measured it on 24 invented facts: alone it learns every trained fact but
    forgets far more than 6 decayed epochs (SmolLM2-135M kept 49 of 68 everyday answers, general-text
    perplexity +277 %); with replay held by the KL term it learned them all and kept 63 of 68 (+5 %). A base
    model without a chat template of its own has no chat to lose and must learn to end its answers: it
    trains until recalled too (Gemma 3 270M at 2e-4 did not learn the demo's facts in 6 epochs).
    `can_check` is False where no process may score the model alone (FSDP): there it cannot be on.
    """
    small = data.answers and data.train_examples is not None and data.train_examples < SMALL_DATASET
    wanted = config.stop_when_recalled
    if wanted is None:  # where replay holds a chat model to its base, or a base model has no chat to lose
        wanted = bool(config.replay_kl) or (not data.chat_model and method_spec(config.method).objective == "sft")
    recall = bool(small and can_check and method_spec(config.method).objective in ("sft", "distill") and wanted)
    patience = config.early_stopping_patience
    if patience is None:
        patience = DEFAULT_PATIENCE if small and data.has_eval and not recall else 0
    updates: dict[str, Any] = {"stop_when_recalled": recall, "early_stopping_patience": patience}
    if config.epochs is None:
        updates["epochs"] = SMALL_DATA_MAX_EPOCHS if recall else DEFAULT_EPOCHS
    note = None
    if config.early_stopping_patience is None and patience:
        note = (f"small dataset: early stopping after {DEFAULT_PATIENCE} evaluations without a better eval loss "
                "(set early_stopping_patience: 0 to turn it off)")
    return config.with_updates(**updates), note


def require_method_data(loaded: LoadedData, eval_loaded: LoadedData | None, method: str) -> None:
    """The data `method` trains on is there, in training and eval data: chosen/rejected pairs for the preference methods,
    answers labelled good or bad for KTO; any records for the rest. One call for creating a run and for its child."""
    spec = method_spec(method)
    if spec.pairs_data:
        require_pairs(loaded, eval_loaded, method)
    elif spec.labelled_data:
        require_labels(loaded, eval_loaded, method)
    for data in (loaded, eval_loaded):
        if data is None:
            continue
        if spec.samples_answers and data.shape in PLAIN_TEXT_SHAPES:
            raise DataError(f"{data.path}: method {method} samples answers to prompts, but this is '{data.shape}' data",
                            'write one prompt a line, with its reference answer when it has one: '
                            '{"prompt": "…", "completion": "reference answer"} or {"prompt": "…"}')
        if not spec.samples_answers and data.shape == "prompts":
            raise DataError(f"{data.path}: these are prompts without answers; method {method} learns from answers",
                            "add each prompt's answer as 'completion', or train on prompts alone with --method grpo")


def require_labels(loaded: LoadedData, eval_loaded: LoadedData | None, method: str) -> None:
    """KTO needs every answer labelled good or bad (chosen/rejected pairs count as one of each), in training and eval
    data; the DataError names the first record without a label."""
    for data in (loaded, eval_loaded):
        if data is None or data.shape == "pairs":
            continue
        unlabelled = [example.source for example in data.examples if example.label is None]
        if unlabelled:
            more = f" and {len(unlabelled) - 1} more" if len(unlabelled) > 1 else ""
            raise DataError(
                f"{unlabelled[0]}{more}: method {method} trains on answers labelled good or bad, but this record has no label",
                'add "label": true (a good answer) or false (a bad one) to every record, e.g. '
                '{"prompt": "…", "completion": "…", "label": true}; chosen/rejected pairs work too',
            )


def require_pairs(loaded: LoadedData, eval_loaded: LoadedData | None, method: str) -> None:
    """Preference methods need chosen/rejected pairs in both training and eval data."""
    for data in (loaded, eval_loaded):
        if data is not None and data.shape != "pairs":
            raise DataError(
                f"{data.path}: method {method} trains on chosen/rejected pairs, but this is '{data.shape}' data",
                'write one JSON object a line: {"prompt": "…", "chosen": "better answer", "rejected": "worse answer"}',
            )
