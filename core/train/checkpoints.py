"""Checkpoints a crash cannot spoil: flushed to disk, marked complete, and only then are older ones deleted.

The trainer writes a checkpoint folder file by file. A process killed (or a machine losing
power) in the middle leaves a folder without the completion marker, which resume never
picks. The trainer's own rotation deletes old checkpoints before its caller hears that the
new one is written; here the old ones go only once the new one is marked, so the last
complete checkpoint always survives.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..atomic import atomic_write_text, sync_folder, sync_tree
from ..distributed import several_processes_running
from ..runs import COMPLETE_MARKER, RunDir


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


class CheckpointKeeper(TrainerCallback):
    """After each save: flush and mark the new checkpoint, record a `checkpoint` event, then prune old ones.

    The trainer is given no save_total_limit of its own; `keep` plays that part here.
    """

    def __init__(self, run: RunDir, keep: int) -> None:
        self.run = run
        self.keep = keep

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        wait_for_every_process()  # each process writes its own RNG state into the folder
        if not state.is_world_process_zero or not folder.is_dir():
            return
        mark_complete(folder, state.global_step)
        self.run.append_event("checkpoint", step=state.global_step, path=str(folder))
        prune(Path(args.output_dir), self.keep, state.best_model_checkpoint)


def wait_for_every_process() -> None:
    """A barrier across the processes of a distributed run; nothing for a run of one."""
    if several_processes_running():
        import torch.distributed as dist

        dist.barrier()
