"""The runner's memory step: plan the run, fit it to the device, record the plan, refuse what cannot fit."""

from __future__ import annotations

from typing import Callable

from ..config import RunConfig
from ..data.prepare import PreparedData
from ..errors import ResourceError
from ..fit import Fit, settle
from ..hardware import Hardware
from ..memory import merge_and_export_needs, model_shape
from ..methods import method_spec
from ..models import ResolvedModel
from ..events import Planned, Warned
from ..runs import RunDir


def fit_memory(run: RunDir, config: RunConfig, hardware: Hardware, model_ref: ResolvedModel, data: PreparedData,
               echo: Callable[[str], None], refit: bool = True) -> tuple[RunConfig, Fit | None]:
    """Plan the run's memory from the model's dimensions and the longest examples, fit the batch
    split and checkpointing to the device (with `auto_fit`; not on resume, which keeps the split
    its checkpoint was trained with), record the plan as a `plan` event and the settled values in
    config.yaml. A run the plan says cannot fit is refused here, before the model is loaded,
    unless auto_fit is off."""
    dims = model_shape(model_ref.path)
    if dims is None:
        echo("memory plan: the model's dimensions are unknown; training as configured")
        return run.save_config(config.with_updates(gradient_checkpointing=bool(config.gradient_checkpointing))), None
    lengths = [len(e.input_ids) for e in data.train]
    fit = settle(config if refit else config.with_updates(auto_fit=False), hardware, *dims, lengths, data.stats.answer_share)
    plan = fit.plan
    run.record(Planned(**plan.as_event(), batch_size=fit.batch_size, grad_accum=fit.grad_accum,
                       max_length=fit.max_length, gradient_checkpointing=fit.gradient_checkpointing, changes=list(fit.changes),
                       allocator=None if hardware.cuda else hardware.cpu_allocator))
    echo(f"memory plan: {plan.peak_gb:.2f} GB peak ({', '.join(f'{name} {gb:.2f}' for name, gb in plan.parts)}) "
         f"of {plan.budget_gb:.1f} GB free — {plan.verdict}")
    for change in fit.changes:
        echo(f"auto-fit: {change}")
    if method_spec(config.method).mergeable:
        _warn_about_merge_and_export(run, dims[0], hardware, echo)
    if plan.verdict == "too big" and config.auto_fit and refit:
        raise ResourceError(
            f"{model_ref.name} with {config.method} needs about {plan.total_gb:.1f} GB even at batch {fit.batch_size}"
            f"{' with gradient checkpointing' if fit.gradient_checkpointing else ''}, and {plan.budget_gb:.1f} GB is free",
            "use --method qlora, a smaller model or a shorter max_length, or close what else uses the memory",
        )
    settled = config.with_updates(batch_size=fit.batch_size, grad_accum=fit.grad_accum,
                                  gradient_checkpointing=fit.gradient_checkpointing)
    return run.save_config(settled), fit


def _warn_about_merge_and_export(run: RunDir, params_b: float, hardware: Hardware, echo: Callable[[str], None]) -> None:
    """Say now, not hours from now, when merge or export will not fit this machine's RAM or disk."""
    for phase in merge_and_export_needs(params_b):
        short = phase.shortfalls(hardware.ram_available_gb, hardware.disk_free_gb)
        if short:
            message = f"{phase.phase} after training will need {' and '.join(short)}"
            hint = "free some space before it, or run it on a machine with more memory (copy the run directory)"
            run.record(Warned(error=message, hint=hint))
            echo(f"warning: {message}; {hint}")
