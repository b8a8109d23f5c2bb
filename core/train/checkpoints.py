"""The trainer callback that keeps checkpoints a crash cannot spoil: flushed, marked complete, then pruned.

The trainer's own rotation deletes old checkpoints before its caller hears that the new one
is written; here the old ones go only once the new one is marked complete
(`core/checkpoint_folders.py`), so the last complete checkpoint always survives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..accelerate_setup import several_processes_running
from ..checkpoint_folders import mark_complete, prune
from ..events import CheckpointSaved
from ..runs import RunDir


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
        self.run.record(CheckpointSaved(step=state.global_step, path=str(folder)))
        prune(Path(args.output_dir), self.keep, state.best_model_checkpoint)


def wait_for_every_process() -> None:
    """A barrier across the processes of a distributed run; nothing for a run of one."""
    if several_processes_running():
        import torch.distributed as dist

        dist.barrier()
