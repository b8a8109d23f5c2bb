"""Auto-fit: choose batch size, gradient accumulation, max length and checkpointing so a run fits.

The effective batch (batch_size × grad_accum) the person asked for is kept; what changes is
how it is split, whether activations are recomputed, and, only when nothing else fits, how
long examples may be. Each candidate is priced by the memory planner against the device's
free memory, with the planner's 15 % margin; the first that fits, in order of speed, wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .catalog import ModelSpec, Shape
from .config import RunConfig
from .hardware import Hardware, resolve_method
from .memory import MemoryEstimate, estimate_training_memory, model_shape
from .methods import method_spec

PARTIAL_CHECKPOINTING = (4, 2, 1)
"""What auto-fit tries once checkpointing is needed, sparsest first: every 4th layer recomputed, every 2nd, every one."""
LENGTH_QUANTILES = (0.99, 0.95, 0.9, 0.75, 0.5)
"""Where max_length may be cut, as quantiles of the examples' lengths, when even batch 1 does not fit."""


@dataclass(frozen=True)
class Fit:
    """The chosen split of the batch and its memory plan."""

    batch_size: int
    grad_accum: int
    max_length: int
    gradient_checkpointing: bool
    plan: MemoryEstimate
    checkpoint_every: int = 1
    """With checkpointing, every how many layers one is recomputed (1: all)."""
    truncated: int = 0
    """Examples longer than the chosen max_length (cut to it)."""
    changes: tuple[str, ...] = field(default=())
    """What differs from the configuration, in words; empty when it fits as configured."""

    @property
    def fits(self) -> bool:
        """Whether the plan leaves the 15 % margin."""
        return self.plan.verdict == "fits"


def plan_for(config: RunConfig, hardware: Hardware, params_b: float, shape: Shape, *, batch_size: int,
             seq_len: int, gradient_checkpointing: bool, answer_share: float = 1.0, checkpoint_every: int = 1,
             lengths: Sequence[int] = ()) -> MemoryEstimate:
    """The memory plan of `config` on `hardware` with this batch, length and checkpointing (of every n-th layer); with
    padding-free batches, the largest micro-batch the examples' `lengths` can make."""
    return estimate_training_memory(
        params_b, shape, method=resolve_method(config.method, hardware), batch_size=batch_size, seq_len=seq_len,
        lora_r=config.lora_r, gradient_checkpointing=gradient_checkpointing, on_gpu=hardware.cuda,
        budget_gb=hardware.memory_budget_gb, freeze_layers=config.freeze_layers, compute_dtype=hardware.compute_dtype,
        answer_share=answer_share, lora_targets=config.lora_targets, cpu_allocator=hardware.cpu_allocator,
        teacher_params_b=teacher_params_b(config), replay_kl=bool(config.replay and config.replay_kl),
        checkpoint_every=checkpoint_every, load_in_4bit=config.load_in_4bit,
        packed_tokens=largest_packed_batch(lengths, batch_size, seq_len) if config.padding_free and lengths else None,
    )


def largest_packed_batch(lengths: Sequence[int], batch_size: int, max_length: int) -> int:
    """The most real tokens a padding-free micro-batch of `batch_size` examples can hold: its longest examples, each
    cut at `max_length` (a padded batch holds batch_size × the longest; on chats of varied length, far more)."""
    return sum(sorted(min(n, max_length) for n in lengths)[-batch_size:])


def teacher_params_b(config: RunConfig) -> float | None:
    """A distill run's teacher size in billions of parameters, when its folder, run or catalog entry
    gives it (a shrink's teacher is larger than its student); None plans it as large as the student."""
    if method_spec(config.method).objective != "distill" or not config.teacher:
        return None
    reference = Path(config.teacher).expanduser()
    if (reference / "config.yaml").is_file():  # a trained run teaches with its merged weights
        reference = reference / "merged"
    dims = model_shape(str(reference) if reference.is_dir() else config.teacher)
    return dims[0] if dims else None


def fit_training(config: RunConfig, hardware: Hardware, params_b: float, shape: Shape, lengths: Sequence[int],
                 answer_share: float = 1.0) -> Fit:
    """The fastest batch split, checkpointing and max length that fit, given the examples' token lengths.

    Candidates, fastest first: without checkpointing at the full batch down to a quarter of it, then
    checkpointing every 4th layer, then every 2nd, over the same batches, then every layer down to batch 1,
    each at the longest example's length; then the same at shorter max lengths. The checkpointing setting (and
    `checkpoint_every`) is kept when the config fixes it. When nothing fits, the smallest candidate comes back
    with its "too big" plan.
    """
    effective = config.batch_size * config.grad_accum
    longest = _longest(config, lengths)
    spec = method_spec(resolve_method(config.method, hardware))
    sizes = _halvings(config.batch_size, spec.min_batch)
    checkpointing = config.gradient_checkpointing
    if checkpointing is None:
        allowed = [False, True] if spec.can_checkpoint else [False]
    else:
        allowed = [checkpointing]
    spacings = (config.checkpoint_every,) if config.checkpoint_every else PARTIAL_CHECKPOINTING
    order = [(0, size) for size in sizes if False in allowed and (len(allowed) == 1 or size * 4 >= config.batch_size)]
    # Recomputing fewer layers is worth a smaller batch (down to a quarter), as not recomputing at all is.
    order += [(every, size) for every in spacings for size in sizes
              if True in allowed and (every == spacings[-1] or size * 4 >= config.batch_size)]
    last: Fit | None = None
    for max_length in _length_candidates(longest, lengths):
        for every, size in order:
            plan = plan_for(config, hardware, params_b, shape, batch_size=size, seq_len=max_length,
                            gradient_checkpointing=bool(every), answer_share=answer_share, checkpoint_every=every or 1,
                            lengths=lengths)
            last = Fit(size, math.ceil(effective / size), max_length, bool(every), plan, checkpoint_every=every or 1,
                       truncated=sum(1 for n in lengths if n > max_length))
            if last.fits:
                return _with_changes(last, config, longest)
    assert last is not None
    return _with_changes(last, config, longest)


def settle(config: RunConfig, hardware: Hardware, params_b: float, shape: Shape, lengths: Sequence[int],
           answer_share: float = 1.0) -> Fit:
    """The fit with `auto_fit`; otherwise the configuration as it is, with its plan."""
    if config.auto_fit:
        return fit_training(config, hardware, params_b, shape, lengths, answer_share)
    longest = _longest(config, lengths)
    checkpointing, every = bool(config.gradient_checkpointing), config.checkpoint_every or 1
    plan = plan_for(config, hardware, params_b, shape, batch_size=config.batch_size, seq_len=longest,
                    gradient_checkpointing=checkpointing, answer_share=answer_share, checkpoint_every=every, lengths=lengths)
    return Fit(config.batch_size, config.grad_accum, longest, checkpointing, plan, checkpoint_every=every)


def catalog_plan(spec: ModelSpec, hardware: Hardware) -> Fit:
    """Auto-fit's choice for catalog model `spec` here with the default settings (auto method, batch 8, examples of
    512 tokens, half answers): what the catalog's badge and details say."""
    config = RunConfig(model=spec.name, data="-")
    return fit_training(config, hardware, spec.params_b, spec.shape, [config.max_length], answer_share=0.5)


def model_fit(spec: ModelSpec, hardware: Hardware) -> str:
    """"yes", "tight", "slow" or "no": whether fine-tuning catalog model `spec` here fits, after auto-fit
    (`catalog_plan`). "slow" is a CPU with a model past 0.6 B parameters, which fits but takes hours per epoch."""
    fit = catalog_plan(spec, hardware)
    if fit.plan.verdict == "too big" or fit.truncated:
        return "no"
    if fit.plan.verdict == "tight":
        return "tight"
    return "slow" if not hardware.cuda and spec.params_b > 0.6 else "yes"


def _longest(config: RunConfig, lengths: Sequence[int]) -> int:
    """The longest example's length after truncation at max_length: the worst batch's length."""
    return min(config.max_length, max(lengths, default=config.max_length))


def _halvings(size: int, smallest: int = 1) -> list[int]:
    """size, size/2, … down to `smallest` (rounded up)."""
    sizes = [size]
    while sizes[-1] > smallest:
        sizes.append(max(smallest, math.ceil(sizes[-1] / 2)))
    return sizes


def _length_candidates(longest: int, lengths: Sequence[int]) -> list[int]:
    """The longest example's length, then shorter cuts at the length quantiles (multiples of 8, at least 16)."""
    ordered = sorted(lengths)
    candidates = [longest]
    for quantile in LENGTH_QUANTILES:
        if not ordered:
            break
        cut = max(16, math.ceil(ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] / 8) * 8)
        if cut < candidates[-1]:
            candidates.append(cut)
    return candidates


def _with_changes(fit: Fit, config: RunConfig, longest: int) -> Fit:
    """Describe what the fit changed from the configuration."""
    changes = []
    if fit.batch_size != config.batch_size:
        changes.append(f"batch_size {config.batch_size} → {fit.batch_size} with grad_accum {fit.grad_accum} "
                       f"(effective batch {fit.batch_size * fit.grad_accum})")
    if fit.gradient_checkpointing and not config.gradient_checkpointing:
        changes.append(f"gradient checkpointing on {checkpointing_words(fit.checkpoint_every)}")
    if fit.max_length < longest:
        changes.append(f"max_length {config.max_length} → {fit.max_length} ({fit.truncated} longer examples cut)")
    return replace(fit, changes=tuple(changes))


def checkpointing_words(every: int) -> str:
    """What checkpointing every `every`-th layer costs, in words: its recomputed forward passes come to up to half again
    an adapter step's matmul work when every layer is recomputed (the forward is a third of it), less when fewer are."""
    return f"for {_layers(every)} (its activations recomputed: less memory, up to {50 // every}% more compute per step)"


def checkpointing_state(fit: Fit) -> str:
    """A fit's checkpointing in a few words: off, or on for which layers."""
    return f"on for {_layers(fit.checkpoint_every)}" if fit.gradient_checkpointing else "off"


def _layers(every: int) -> str:
    return "every layer" if every == 1 else f"every {every}{'nd' if every == 2 else 'th'} layer"
