"""Experiment tracking: the trackers a run reports to — TensorBoard, trackio, Weights & Biases, MLflow — through the
trainers' own integrations (transformers' callbacks), checked before training starts, and tuneforge's own figures
(memory, speed, forgetting) logged to the same place beside the trainer's loss, learning rate and gradient norm.

TensorBoard and trackio work offline and write into the run folder (RUN_DIR/tensorboard, RUN_DIR/trackio); MLflow
writes RUN_DIR/mlruns unless MLFLOW_TRACKING_URI names a server; W&B goes where its own login sends it (or into
RUN_DIR/wandb with WANDB_MODE=offline). None of them is installed with tuneforge: `pip install 'tuneforge[tracking]'`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ConfigError

PROJECT = "tuneforge"
"""The project (trackio, W&B) every run reports under; each run is named after its folder."""
INSTALL_HINT = "pip install 'tuneforge[tracking]' (TensorBoard and trackio), or pip install {package}"


def require_trackers(names: Iterable[str]) -> None:
    """A ConfigError, before anything trains, for a tracker that is not installed or cannot log in: a run that
    failed an hour in because W&B wanted a key has lost the hour."""
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise ConfigError(f"report_to {name}: {name} is not installed", INSTALL_HINT.format(package=name))
        if name == "wandb" and not _wandb_can_log():
            raise ConfigError("report_to wandb: not logged in to Weights & Biases",
                              "run `wandb login`, set WANDB_API_KEY, or set WANDB_MODE=offline to keep the run in its folder")


def _wandb_can_log() -> bool:
    """Whether W&B will take the run: a key in the environment or in its netrc login, or a mode that needs none."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return True
    import netrc

    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def tracking_environment(names: Iterable[str], run_dir: Path) -> dict[str, str]:
    """Where each tracker writes, for the training child's environment: the run folder, unless the person pointed
    it elsewhere."""
    names = set(names)
    where = {"tensorboard": [("TENSORBOARD_LOGGING_DIR", str(run_dir / "tensorboard"))],
             "trackio": [("TRACKIO_DIR", str(run_dir / "trackio"))],
             "mlflow": [("MLFLOW_TRACKING_URI", (run_dir / "mlruns").as_uri()), ("MLFLOW_EXPERIMENT_NAME", PROJECT)],
             "wandb": [("WANDB_DIR", str(run_dir)), ("WANDB_PROJECT", PROJECT)]}
    return {variable: value for name in names for variable, value in where.get(name, []) if not os.environ.get(variable)}


def tracking_arguments(names: list[str], run_name: str) -> dict[str, Any]:
    """The TrainingArguments that turn the trackers on: transformers' `report_to`, the run's name, trackio's project."""
    return {"report_to": list(names) or "none", "run_name": run_name, "project": PROJECT}


def log_figures(trainer: Any, figures: dict[str, float | int | None]) -> None:
    """tuneforge's own figures (planned and peak memory, tokens/s, forgetting) to every tracker the trainer reports to,
    through its own `log` (rank 0 only, as the integrations log), under `tuneforge/`."""
    present = {f"tuneforge/{name}": float(value) for name, value in figures.items() if value is not None}
    if present and trainer.args.report_to and trainer.args.report_to != ["none"]:
        trainer.log(present)


TRACKIO_LOG = """
import json, sys
import trackio
project, name, metrics, step = sys.argv[1:]
trackio.init(project=project, name=name, resume="allow", auto_log_cpu=False, auto_log_gpu=False)
trackio.log(json.loads(metrics), step=int(step))
trackio.finish()
"""
"""What logs scores to a run's trackio in a child process of its own."""


def log_eval_scores(run_dir: Path, names: Iterable[str], scores: dict[str, dict[str, float]], step: int) -> None:
    """`tuneforge eval`'s scores (per model label, per measure) into the run's offline trackers, at the run's last
    training step, filed under `eval_answers/`, where its training wrote (`tracking_environment`). TensorBoard and
    trackio only: a W&B or MLflow run is closed by then, and the scores stay in RUN_DIR/eval/report.json for them."""
    names = set(names)
    environment = {**os.environ, **tracking_environment(names, run_dir)}
    flat = {f"eval_answers/{label}/{measure}": value for label, measures in scores.items() for measure, value in measures.items()}
    if "tensorboard" in names and importlib.util.find_spec("tensorboard") is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(environment["TENSORBOARD_LOGGING_DIR"])
        for tag, value in flat.items():
            writer.add_scalar(tag, value, step)
        writer.close()
    if "trackio" in names and importlib.util.find_spec("trackio") is not None:
        # In a child: trackio reads its folder once, when first imported, and this process (the app) may have imported
        # it for another run already.
        subprocess.run([sys.executable, "-c", TRACKIO_LOG, PROJECT, run_dir.name, json.dumps(flat), str(step)],
                       env=environment, check=True, capture_output=True)
