"""Trainer callbacks: events.jsonl reporting and a graceful stop."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from ..accelerate_setup import several_processes_running
from ..events import Evaluated, Step
from ..runs import RunDir


def peak_memory_gb() -> float:
    """Peak memory of this process: CUDA allocations on a GPU, resident set size on a CPU.

    On Linux the resident peak is the kernel's high-water mark of this process's own memory (VmHWM): `ru_maxrss`
    carries over the launching process's peak through fork and exec, so a run started by an app that had a model
    loaded (or by a test process gigabytes large) would report the launcher's memory as its own."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except (OSError, ValueError):
        pass
    import resource
    import sys

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**30 if sys.platform == "darwin" else 2**20)  # bytes, KiB


class EventsCallback(TrainerCallback):
    """Append step and eval events to the run's events.jsonl and print a progress line."""

    def __init__(self, run: RunDir, echo: Callable[[str], None] | None = print) -> None:
        self.run = run
        self.echo = echo
        self._step_started = 0.0
        self._step_seconds = 0.0  # time inside training steps since the last log; evals and saves excluded
        self._last_tokens = 0
        self.tokens_per_second: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        import torch

        self._last_tokens = state.num_input_tokens_seen
        if torch.cuda.is_available():  # a run's peak is its own, also when one process trains several
            torch.cuda.reset_peak_memory_stats()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_seconds += time.perf_counter() - self._step_started

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" in logs:
            tokens = state.num_input_tokens_seen - self._last_tokens
            rate = tokens / max(self._step_seconds, 1e-9)
            self._step_seconds, self._last_tokens = 0.0, state.num_input_tokens_seen
            self.tokens_per_second.append(rate)
            event = self.run.record(Step(
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=round(state.epoch or 0.0, 3),
                loss=logs["loss"],
                lr=logs.get("learning_rate"),
                grad_norm=logs.get("grad_norm"),
                tokens_per_second=round(rate, 1),
                memory_gb=round(peak_memory_gb(), 3),
                **sampled_figures(logs),
            ))
            if self.echo:
                reward = f"  reward {event.reward:.3f}" if event.reward is not None else ""
                self.echo(f"step {event.step}/{event.max_steps}  epoch {event.epoch:.2f}  loss {event.loss:.4f}{reward}  "
                          f"{event.tokens_per_second:.0f} tok/s")
        if "eval_loss" in logs:
            self.run.record(Evaluated(step=state.global_step, eval_loss=logs["eval_loss"]))
            if self.echo:
                self.echo(f"eval at step {state.global_step}: loss {logs['eval_loss']:.4f}")


def sampled_figures(logs: dict[str, float]) -> dict[str, Any]:
    """What TRL's GRPO trainer logs of a step's sampled answers, as a Step event's fields (none for other trainers):
    the mean weighted reward, each reward's mean (`rewards/NAME/mean`) and the KL to the base."""
    if "reward" not in logs:
        return {}
    means = {key.removeprefix("rewards/").removesuffix("/mean"): value for key, value in logs.items()
             if key.startswith("rewards/") and key.endswith("/mean")}
    return {"reward": logs["reward"], "rewards": {name: _finite(value) for name, value in means.items()}, "kl": logs.get("kl")}


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN: no answer of the step was scored by it


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Ctrl-C, a polite kill, and a closed terminal (SIGHUP): each checkpoints before training stops."""


class GracefulStop(TrainerCallback):
    """First Ctrl-C (or SIGTERM, or SIGHUP): checkpoint at the end of the current step and stop. Second: abort."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Route the stop signals to a stop request for the duration of training."""
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Give the signals back to whoever had them."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        with contextlib.suppress(OSError):  # after SIGHUP nobody may be reading stdout any more
            print("stopping: saving a checkpoint after this step (press Ctrl-C again to abort without one)", flush=True)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if _any_process(self.requested):  # the processes of a distributed run stop at the same step
            control.should_save = True
            control.should_training_stop = True


def _any_process(flag: bool) -> bool:
    """`flag` or-ed over every process of a distributed run (one tiny all-reduce per step); `flag` alone otherwise."""
    import torch
    import torch.distributed as dist

    if not several_processes_running():
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
