"""A run's checkpoint folders: which exist, which the trainer finished writing, and pruning the old ones.

The trainer writes a checkpoint folder file by file. A process killed (or a machine losing
power) in the middle leaves a folder without the completion marker, which resume never
picks. Old checkpoints are deleted only once a newer one is marked, so the last complete
checkpoint always survives. The trainer callback that marks and prunes is
`train/checkpoints.py`; this module is light, for listings and the parent process too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .atomic import atomic_write_text, sync_folder, sync_tree

COMPLETE_MARKER = "tuneforge-complete"
"""Written into a checkpoint folder after the trainer finished saving it."""


def checkpoint_step(folder: Path) -> int:
    """The step a `checkpoint-N` folder was saved at."""
    return int(folder.name.rsplit("-", 1)[1])


def checkpoint_folders(checkpoints: Path) -> list[Path]:
    """Every `checkpoint-N` folder, complete or not, oldest first."""
    if not checkpoints.is_dir():
        return []
    found = [p for p in checkpoints.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()]
    return sorted(found, key=checkpoint_step)


def is_complete(folder: Path) -> bool:
    """Whether the trainer finished writing this checkpoint (and it reached the disk)."""
    return (folder / COMPLETE_MARKER).is_file()


def mark_complete(folder: Path, step: int) -> None:
    """Flush the checkpoint's files to disk, then write its completion marker atomically."""
    sync_tree(folder)
    atomic_write_text(folder / COMPLETE_MARKER, str(step))
    sync_folder(folder.parent)


def discard_incomplete(checkpoints: Path) -> list[str]:
    """Delete half-written checkpoints (a crash mid-save); their names, for the log."""
    removed = []
    for folder in checkpoint_folders(checkpoints):
        if not is_complete(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def prune(checkpoints: Path, keep: int, protect: str | None = None) -> list[str]:
    """Keep the newest `keep` complete checkpoints (and `protect`, the best one); delete the rest.

    Incomplete folders older than the newest complete one are leftovers of a crash and go too;
    a newer incomplete one may be a save in progress and is left alone.
    """
    folders = checkpoint_folders(checkpoints)
    complete = [f for f in folders if is_complete(f)]
    if not complete:
        return []
    kept = {f.name for f in complete[-keep:]} | ({Path(protect).name} if protect else set())
    newest = checkpoint_step(complete[-1])
    removed = []
    for folder in folders:
        if folder.name in kept or checkpoint_step(folder) > newest:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    return removed


def last_complete(checkpoints: Path) -> Path | None:
    """The newest checkpoint the trainer finished writing (half-written ones are skipped)."""
    complete = [folder for folder in checkpoint_folders(checkpoints) if is_complete(folder)]
    return complete[-1] if complete else None
