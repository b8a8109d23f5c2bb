"""What a shrink will do, decided before anything heavy runs: from which model, to how many layers,
in which stages, healed on which data and for how long.

The plan is written to SHRINK_DIR/shrink.json and never changes: a resume reads it back, so a
stopped shrink continues exactly as it started.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import ConfigError

PLAN_FILE = "shrink.json"
MIN_LAYERS = 2
"""The first and last layers always stay."""
STAGE_SHARE = 1 / 8
"""A stage removes at most this share of the source's layers by default: a small step heals in a few epochs."""
HEAL_EPOCHS = 3.0
"""Passes over the data that heal each stage by default (distillation from the stage before)."""
HEAL_GENERAL_PROMPTS = 60
"""General chat prompts whose teacher answers each stage also distils by default (`distill_general`): healed
on the domain data alone, a 20-layer demo model kept its facts but lost general chat (bench/shrink.py)."""
CARRIED_SETTINGS = ("data", "data_split", "eval_data", "eval_data_split", "columns", "eval_split", "max_length",
                    "chat_template", "train_reasoning", "seed", "batch_size", "grad_accum")
"""What a healing run takes over from the source run: the same data, split, template and batch."""


@dataclass(frozen=True)
class ShrinkPlan:
    """A shrink, as it will run."""

    source: str
    """What was named: a run directory or a model reference."""
    start: str
    """The model folder the first stage prunes (a run's merged weights, or the resolved model)."""
    layers: list[int]
    """The source's layer count, then the count after each stage."""
    heal: dict[str, Any] = field(default_factory=dict)
    """The healing runs' settings (data, split, template, epochs or max_steps, …): a distill RunConfig's."""

    @property
    def stages(self) -> int:
        """How many stages remove layers."""
        return len(self.layers) - 1

    def write(self, folder: Path) -> Path:
        """Save the plan as SHRINK_DIR/shrink.json."""
        path = folder / PLAN_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path) -> ShrinkPlan:
        """The plan of an existing shrink directory."""
        path = folder / PLAN_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise ConfigError(f"{folder}: not a shrink directory (no {PLAN_FILE})",
                              "start one with `tuneforge shrink SOURCE --layers N`") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc})", "start a new shrink; this one's plan was damaged") from None


def target_layers(total: int, layers: int | None, keep: float | None) -> int:
    """The layer count to shrink to, from `--layers N` or `--keep F`; refused when it is not below `total`
    or below two."""
    if (layers is None) == (keep is None):
        raise ConfigError("say how small: --layers N or --keep F (one of them)", f"the model has {total} layers; e.g. --layers {max(MIN_LAYERS, total * 2 // 3)}")
    if keep is not None:
        if not 0 < keep < 1:
            raise ConfigError(f"--keep {keep}: must be a fraction between 0 and 1", "e.g. --keep 0.66 keeps two thirds of the layers")
        layers = round(total * keep)
    assert layers is not None
    if layers >= total:
        raise ConfigError(f"the model has {total} layers: shrinking to {layers} removes none",
                          f"pick fewer than {total}, e.g. --layers {max(MIN_LAYERS, total * 2 // 3)}")
    if layers < MIN_LAYERS:
        raise ConfigError(f"{layers} layers is too few: the first and last layers always stay",
                          f"pick at least {MIN_LAYERS} (--layers {MIN_LAYERS}, or a larger --keep)")
    return layers


def stage_layers(total: int, target: int, stages: int | list[int] | None = None) -> list[int]:
    """`total`, then the layer count after each stage down to `target`: `stages` evenly spaced stages,
    or the counts `stages` lists (e.g. [24, 20, 16]). By default each stage removes at most an eighth
    of the source's layers."""
    removed = total - target
    if isinstance(stages, list):
        counts = [total, *stages]
        if counts[-1] != target or any(after >= before for before, after in zip(counts, counts[1:], strict=False)):
            raise ConfigError(f"--stages {','.join(map(str, stages))}: each stage must keep fewer layers than the one before, "
                              f"from fewer than {total} down to {target}", f"e.g. --stages {total - removed // 2},{target}")
        return counts
    if stages is None:
        stages = math.ceil(removed / max(1, math.ceil(total * STAGE_SHARE)))
    if not 1 <= stages <= removed:
        raise ConfigError(f"--stages {stages}: each stage removes at least one layer, and {removed} go",
                          f"pick 1 to {removed} stages")
    return [total] + [total - round(removed * k / stages) for k in range(1, stages + 1)]


def heal_settings(source_config: RunConfig | None, data: str | None, eval_data: str | None,
                  epochs: float | None, max_steps: int | None) -> dict[str, Any]:
    """The healing runs' settings: what the source run trained on (or `data`), healed for `epochs` (or
    `max_steps` optimizer steps) a stage, with the teacher's answers to the general prompts besides."""
    settings: dict[str, Any] = {}
    if source_config is not None:
        settings = {name: getattr(source_config, name) for name in CARRIED_SETTINGS}
    if data is not None:
        settings["data"] = data
        settings.pop("data_split", None)
    if eval_data is not None:
        settings["eval_data"] = eval_data
    if not settings.get("data"):
        raise ConfigError("no data to heal the smaller model on", "pass --data FILE (a finished run as SOURCE brings its own)")
    settings["epochs"] = epochs if epochs is not None else HEAL_EPOCHS
    settings["distill_general"] = HEAL_GENERAL_PROMPTS
    if max_steps is not None:
        settings["max_steps"] = max_steps
    return {key: value for key, value in settings.items() if value is not None}


def parse_stages(text: str | None) -> int | list[int] | None:
    """`--stages 3` (how many) or `--stages 24,20,16` (each stage's layer count), as typed."""
    if text is None:
        return None
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--stages {text}: not a number or a list of layer counts", "e.g. --stages 3, or --stages 24,20,16") from None
    return counts if "," in text else counts[0]
