"""The runner's memory step: record the settled run's plan, warn about merge and export, refuse what cannot fit."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ResourceError
from ..events import Planned, Warned
from ..hardware import Hardware
from ..memory import merge_and_export_needs
from ..methods import method_spec, smaller_base_options
from ..models import ResolvedModel
from ..runs import RunDir
from ..settle import SettledRun


def check_memory_plan(run: RunDir, settled: SettledRun, hardware: Hardware, model_ref: ResolvedModel,
                      echo: Callable[[str], None], refuse: bool = True) -> None:
    """Record the settled run's memory plan as a `plan` event and tell it (with what auto-fit and
    settling changed), warn now when merge or export will not fit, and — with `refuse` and
    auto_fit — refuse a run the plan says cannot fit, before the model is loaded."""
    fit, config = settled.fit, settled.config
    if fit is None:
        echo("memory plan: the model's dimensions are unknown; training as configured")
    else:
        plan = fit.plan
        run.record(Planned(**plan.as_event(), batch_size=fit.batch_size, grad_accum=fit.grad_accum,
                           max_length=fit.max_length, gradient_checkpointing=fit.gradient_checkpointing,
                           checkpoint_every=fit.checkpoint_every if fit.gradient_checkpointing else None,
                           changes=list(fit.changes), allocator=None if hardware.cuda else hardware.cpu_allocator))
        echo(f"memory plan: {plan.peak_gb:.2f} GB peak ({', '.join(f'{name} {gb:.2f}' for name, gb in plan.parts)}) "
             f"of {plan.budget_gb:.1f} GB free — {plan.verdict}")
    for note in settled.notes:
        echo(note)
    if fit is None:
        return
    if method_spec(config.method).mergeable and settled.params_b:
        _warn_about_merge_and_export(run, settled.params_b, hardware, echo)
    if fit.plan.verdict == "too big" and config.auto_fit and refuse:
        raise ResourceError(
            f"{model_ref.name} with {config.method} needs about {fit.plan.total_gb:.1f} GB even at batch {fit.batch_size}"
            f"{' with gradient checkpointing' if fit.gradient_checkpointing else ''}, and {fit.plan.budget_gb:.1f} GB is free",
            f"use {smaller_base_options(config.method, config.load_in_4bit)} or a shorter max_length, or close what else uses the memory",
        )


def _warn_about_merge_and_export(run: RunDir, params_b: float, hardware: Hardware, echo: Callable[[str], None]) -> None:
    """Say now, not hours from now, when merge or export will not fit this machine's RAM or disk."""
    for phase in merge_and_export_needs(params_b):
        short = phase.shortfalls(hardware.ram_available_gb, hardware.disk_free_gb)
        if short:
            message = f"{phase.phase} after training will need {' and '.join(short)}"
            hint = "free some space before it, or run it on a machine with more memory (copy the run directory)"
            run.record(Warned(error=message, hint=hint))
            echo(f"warning: {message}; {hint}")
