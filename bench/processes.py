"""One training process against several (through accelerate), with the same global batch.

    python bench/processes.py                    # the default model, 1 vs 2 processes, on this machine
    python bench/processes.py --processes 4 --steps 20

Both sides train the same LoRA run (the default model on the shipped Brindlewick data, batch
8 in all) through `tuneforge train` exactly as a person starts it: the baseline in one
process at batch 8, the other in N processes at batch 8/N each. On a GPU machine N processes
are N GPUs; on a CPU they share the cores (torchrun gives each one thread, where the single
process uses them all). Printed per side: non-padding tokens per second of the whole run
(the trainer counts every process's tokens), training time, rank 0's peak memory (each
process holds its own copy of the model), and the first and last steps' losses: the first,
before any update, must agree; later ones drift apart as float rounding differs (each
process pads its batch to its own longest example) and training amplifies it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tuneforge.core.api import runs as runs_api
from tuneforge.core.demo import demo_config


def train_side(root: Path, processes: int, batch: int, steps: int) -> dict[str, float]:
    """Train one side in a fresh run directory; its figures."""
    config = demo_config(method="lora", batch_size=batch, grad_accum=1, processes=processes, max_steps=steps,
                         auto_fit=False, gradient_checkpointing=False, forgetting_probe=False,
                         early_stopping_patience=0, eval_data=None, eval_split=0.0)
    run = runs_api.create_run(config, root / f"processes-{processes}")
    result = runs_api.train(run.path, echo=None)
    losses = [step.loss for step in run.history().steps]
    return {"tokens/s": result.tokens_per_second, "seconds": result.runtime_s,
            "peak GB": result.peak_memory_gb, "first loss": losses[0], "last loss": losses[-1]}


def main() -> None:
    """Run both sides and print the table with the ratios against one process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8, help="the global batch, split over the processes")
    args = parser.parse_args()
    if args.batch % args.processes:
        parser.error("--batch must divide by --processes")
    root = Path(tempfile.mkdtemp(prefix="tuneforge-bench-processes-"))
    try:
        one = train_side(root, 1, args.batch, args.steps)
        many = train_side(root, args.processes, args.batch // args.processes, args.steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'side':<28}{'tokens/s':>10}{'seconds':>10}{'peak GB':>10}{'first loss':>12}{'last loss':>12}")
    for name, figures in ((f"1 process, batch {args.batch}", one),
                          (f"{args.processes} processes, batch {args.batch // args.processes} each", many)):
        print(f"{name:<28}{figures['tokens/s']:>10.1f}{figures['seconds']:>10.1f}{figures['peak GB']:>10.2f}"
              f"{figures['first loss']:>12.6f}{figures['last loss']:>12.4f}")
    print(f"{'ratio':<28}{many['tokens/s'] / one['tokens/s']:>9.2f}x{many['seconds'] / one['seconds']:>9.2f}x"
          f"{many['peak GB'] / one['peak GB']:>9.2f}x{many['first loss'] - one['first loss']:>+12.6f}"
          f"{many['last loss'] - one['last loss']:>+12.4f}")


if __name__ == "__main__":
    main()
