"""`tuneforge compare RUN…`: the trade-offs of finished runs side by side, from their `finished` events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .runs import RunDir


@dataclass
class ComparedRun:
    """One finished run's figures, as its `finished` event recorded them."""

    name: str
    method: str
    trainable_params: int
    total_params: int
    peak_memory_gb: float
    tokens_per_second: float | None
    final_loss: float
    eval_loss: float | None
    perplexity_before: float | None
    perplexity_after: float | None
    accuracy: float | None
    accuracy_of: str | None
    runtime_s: float
    everyday_known: int | None = None
    """Everyday questions the base answered right (the forgetting probe); None when it did not ask."""
    everyday_kept: int | None = None
    """How many of those the tuned model still answers right."""

    @property
    def forgetting(self) -> float | None:
        """Relative change of general-text perplexity over training (+0.05 = 5 % worse)."""
        if not self.perplexity_before or self.perplexity_after is None:
            return None
        return self.perplexity_after / self.perplexity_before - 1


def compared_run(path: Path) -> ComparedRun:
    """The figures of the run in `path`; a ConfigError when it has not finished training."""
    run = RunDir(Path(path).expanduser().resolve())
    if not run.config_file.is_file():
        raise ConfigError(f"{path}: not a run directory (no config.yaml)", "name run directories; `tuneforge runs` lists them")
    history = run.history()
    result = history.finished.result if history.finished else None
    if result is None:
        raise ConfigError(f"{run.name}: has not finished training (state: {run.state(history)})", "compare runs once they finished")
    return ComparedRun(
        name=run.name,
        method=result.method or run.load_config().method,
        trainable_params=result.trainable_params,
        total_params=result.total_params,
        peak_memory_gb=result.peak_memory_gb,
        tokens_per_second=result.tokens_per_second or None,  # 0 = the trainer did not count tokens
        final_loss=result.final_loss,
        eval_loss=result.eval_loss,
        perplexity_before=result.general_perplexity_before,
        perplexity_after=result.general_perplexity_after,
        accuracy=result.eval_accuracy,
        accuracy_of=result.accuracy_of,
        runtime_s=result.runtime_s,
        everyday_known=result.general_known,
        everyday_kept=result.general_kept,
    )


COLUMNS = ("run", "method", "trainable", "peak GB", "tok/s", "train loss", "eval loss", "everyday kept", "forgetting",
           "eval accuracy", "time")


LEGEND = (
    "everyday kept: of the everyday questions the base answered right, how many the tuned model still does.",
    "forgetting: change of perplexity on general text over training (+ = the model lost some general skill).",
    "eval accuracy: next-token accuracy on held-out answers (tokens), or chosen ranked above rejected (pairs).",
)
"""What the columns that are not plain figures mean, under the table."""


def comparison_rows(runs: list[ComparedRun]) -> list[tuple[str, ...]]:
    """The table's rows as text, one per run, in COLUMNS order."""
    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = []
    for run in runs:
        share = run.trainable_params / max(run.total_params, 1)
        accuracy = "-" if run.accuracy is None else f"{run.accuracy:.1%} {'pairs' if run.accuracy_of == 'pair accuracy' else 'tokens'}"
        rows.append((
            run.name, run.method, f"{_count(run.trainable_params)} ({share:.2%})", f"{run.peak_memory_gb:.2f}",
            number(run.tokens_per_second, ".0f"), f"{run.final_loss:.3f}", number(run.eval_loss, ".3f"),
            "-" if run.everyday_known is None else f"{run.everyday_kept}/{run.everyday_known}",
            number(run.forgetting, "+.1%"), accuracy, f"{run.runtime_s:.0f}s",
        ))
    return rows


def format_table(runs: list[ComparedRun]) -> str:
    """A plain-text table (fixed-width columns) with a legend."""
    rows = [COLUMNS, *comparison_rows(runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.extend(LEGEND)
    return "\n".join(lines)


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
