"""What a run was trained with, so that resume continues the same run or says exactly what changed.

When training starts, RUN_DIR/fingerprint.json records the settled config, a digest of the
data files, of the base model (and a distillation teacher) and the versions of the
libraries that write and read checkpoints. `--resume` compares the run as it is now with
that record: a changed learning rate, an edited dataset, another base or an upgraded
transformers would otherwise continue a different run from the middle of the old one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..config import RunConfig
from ..data.formats import TEXT_SUFFIXES
from ..data.tables import is_saved_dataset
from ..errors import ConfigError
from ..events import Warned
from ..runs import RunDir

FINGERPRINT_FILE = "fingerprint.json"
RESUMABLE_SETTINGS = ("epochs", "max_steps", "save_steps", "save_total_limit", "eval_steps", "early_stopping_patience",
                      "stop_when_recalled", "forgetting_probe")
"""Settings a resume may change: how long to go on, and how often to save and evaluate."""
LIBRARIES = ("tuneforge", "torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes")
HEAD_BYTES = 1 << 20
"""A weights file is known by its size and its first MiB (a safetensors header lists every tensor)."""


def fingerprint(config: RunConfig, base: Path, teacher: Path | None = None) -> dict[str, Any]:
    """The record of what `config` trains: settings, data digests, model digests, library versions."""
    return {
        "config": config.model_dump(mode="json"),
        "data": {name: data_digest(Path(value)) for name, value in (("data", config.data), ("eval_data", config.eval_data)) if value},
        "models": {"base": model_digest(base), **({"teacher": model_digest(teacher)} if teacher else {})},
        "libraries": library_versions(),
    }


def data_digest(path: Path) -> str:
    """sha256 of a data file, of every file of a saved dataset folder, or of every .txt/.md file
    (names and contents) in a documents folder; of the id itself for a hub dataset."""
    digest = hashlib.sha256()
    if not path.exists():  # a hub dataset id: its cached revision is not tracked
        digest.update(f"hub:{path}".encode())
        return digest.hexdigest()
    files = [path]
    if path.is_dir():
        wanted = (lambda p: True) if is_saved_dataset(path) else (lambda p: p.suffix.lower() in TEXT_SUFFIXES)
        files = sorted(p for p in path.rglob("*") if p.is_file() and wanted(p))
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_digest(folder: Path) -> str:
    """A digest of a model folder: config.json, and each weights file's name, size and first MiB."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for file in sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")]) if folder.is_dir() else []:
        digest.update(f"{file.name}:{file.stat().st_size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(HEAD_BYTES))
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that write and read checkpoints."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def record(run: RunDir, current: dict[str, Any]) -> None:
    """Write the run's fingerprint.json."""
    atomic_write_text(run.path / FINGERPRINT_FILE, json.dumps(current, indent=2))


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(changes that make the resumed run a different run, changes a resume may make), as readable lines."""
    blocking, allowed = [], []
    old_config, new_config = recorded.get("config", {}), current["config"]
    # A setting added since the run started was, in effect, at its default then.
    defaults = {name: info.get_default(call_default_factory=True) for name, info in RunConfig.model_fields.items()
                if name not in old_config}
    old_config = {**defaults, **old_config}
    for key in sorted(set(old_config) | set(new_config)):
        if old_config.get(key) != new_config.get(key):
            line = f"setting {key}: {old_config.get(key)!r} → {new_config.get(key)!r}"
            (allowed if key in RESUMABLE_SETTINGS else blocking).append(line)
    for kind, label in (("data", "data file"), ("models", "model")):
        old, new = recorded.get(kind, {}), current[kind]
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                where = new_config.get(name) or old_config.get(name) or name
                blocking.append(f"{label} {name} ({where}) has changed since training started")
    old_libraries, new_libraries = recorded.get("libraries", {}), current["libraries"]
    for name in sorted(set(old_libraries) | set(new_libraries)):
        if old_libraries.get(name) != new_libraries.get(name):
            blocking.append(f"library {name}: {old_libraries.get(name, 'not installed')} → {new_libraries.get(name, 'not installed')}")
    return blocking, allowed


def check_resume(run: RunDir, current: dict[str, Any], accept_changes: bool,
                 echo: Callable[[str], None]) -> None:
    """Refuse to resume a run whose settings, data, base model or libraries changed since it started,
    listing each change; `accept_changes` continues anyway (recorded as a warning)."""
    path = run.path / FINGERPRINT_FILE
    if not path.is_file():
        echo(f"note: {run.name} has no {FINGERPRINT_FILE} (started by an older tuneforge); resuming without checking it")
        record(run, current)
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        recorded = {}
    blocking, allowed = differences(recorded, current)
    for line in allowed:
        echo(f"resuming with {line}")
    if blocking and not accept_changes:
        listing = "\n".join(f"  {line}" for line in blocking)
        raise ConfigError(
            f"{run.path}: the run has changed since its checkpoints were written, so resuming would not continue the same run:\n{listing}",
            "put back what changed (restore the file, reinstall the versions listed), or start a new run; "
            f"to continue anyway: tuneforge train --resume {run.path} --accept-changes",
        )
    if blocking:
        run.record(Warned(error="resumed with changes: " + "; ".join(blocking),
                          hint="the loss curve after this point is not comparable with an uninterrupted run"))
        echo("warning: resuming with changes: " + "; ".join(blocking))
    record(run, current)
