"""Settling a run's config: every choice left to tuneforge, made once, in one place.

A config as a person writes it leaves choices open: `method: auto`, no learning rate, early
stopping and gradient checkpointing unset, a batch that may not fit. Settling makes them for
this machine and this data — the method `auto` means here, the method's learning rate, the
batch split, checkpointing and max length auto-fit finds (with its memory plan), and early
stopping for a small dataset — so config.yaml records what actually runs. `tuneforge plan`,
`create_run`, the app's Train form and the training child all settle through `settle_run`;
they differ only in what they know of the data (the child has tokenized it; the form guesses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_PATIENCE, SMALL_DATASET, RunConfig
from .errors import DataError
from .hardware import Hardware, resolve_method
from .methods import method_spec

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
    """How many examples train; None when not known yet, which leaves early stopping open."""
    has_eval: bool = False

    @classmethod
    def measured(cls, stats: DataStats) -> DataFacts:
        """The facts of a tokenized dataset."""
        return cls(stats.token_lengths, stats.answer_share, stats.train_examples, stats.eval_examples > 0)

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


def resolve_choices(config: RunConfig, hardware: Hardware) -> RunConfig:
    """The choices that depend on the machine alone: the method `auto` means here and its learning
    rate; without auto-fit, checkpointing on for a GPU (where the method allows it)."""
    method = resolve_method(config.method, hardware)
    updates: dict[str, Any] = {"method": method}
    if config.learning_rate is None:
        updates["learning_rate"] = method_spec(method).learning_rate
    if config.gradient_checkpointing is None and not config.auto_fit:
        updates["gradient_checkpointing"] = hardware.cuda and method_spec(method).can_checkpoint
    return config.with_updates(**updates)


def settle_run(config: RunConfig, hardware: Hardware, data: DataFacts | None, dims: tuple[float, Shape] | None,
               refit: bool = True) -> SettledRun:
    """Settle every open choice of `config` for `hardware` and `data`.

    Without `data` (a run being created, its data not tokenized yet) only the machine's choices
    are made and the rest stays open for the training child. `dims` are the model's parameters
    (billions) and shape (`memory.model_shape`); without them nothing is planned and the run
    trains as configured. `refit=False` (a resume) keeps the batch split its checkpoint was
    trained with and only plans it.
    """
    from .fit import settle

    config = resolve_choices(config, hardware)
    if data is None:
        return SettledRun(config, None)
    notes: list[str] = []
    fit = None
    if dims is None:
        config = config.with_updates(gradient_checkpointing=bool(config.gradient_checkpointing))
    else:
        fit = settle(config if refit else config.with_updates(auto_fit=False), hardware, *dims, data.lengths,
                     data.answer_share)
        notes += [f"auto-fit: {change}" for change in fit.changes]
        config = config.with_updates(batch_size=fit.batch_size, grad_accum=fit.grad_accum,
                                     gradient_checkpointing=fit.gradient_checkpointing,
                                     max_length=fit.max_length if fit.truncated else config.max_length)
    if config.early_stopping_patience is None and data.train_examples is not None:
        small = data.train_examples < SMALL_DATASET and data.has_eval
        config = config.with_updates(early_stopping_patience=DEFAULT_PATIENCE if small else 0)
        if small:
            notes.append(f"small dataset: early stopping after {DEFAULT_PATIENCE} evaluations without a better eval loss "
                         "(set early_stopping_patience: 0 to turn it off)")
    return SettledRun(config, fit, dims[0] if dims else None, tuple(notes))


def require_pairs(loaded: LoadedData, eval_loaded: LoadedData | None, method: str) -> None:
    """Preference methods need chosen/rejected pairs in both training and eval data."""
    for data in (loaded, eval_loaded):
        if data is not None and data.shape != "pairs":
            raise DataError(
                f"{data.path}: method {method} trains on chosen/rejected pairs, but this is '{data.shape}' data",
                'write one JSON object a line: {"prompt": "…", "chosen": "better answer", "rejected": "worse answer"}',
            )
