"""Training on several GPUs, CPU processes or machines through accelerate: its config file, the
launch command, and which process of such a run this one is.

A run with `processes × nodes > 1` is started with `accelerate launch` (torchrun underneath),
which starts one `python -m tuneforge.core.train RUN_DIR` per GPU (or per CPU process). LoRA,
QLoRA and the other adapter methods use DDP: each process holds the model and trains on its
share of every step's batches, and their gradients are averaged. Methods that train the whole
model use FSDP on GPUs, which shards weights, gradients and optimizer state across them. CPU
processes talk over gloo. The accelerate config and the exact command are written into the
run directory, so a person can rerun or adapt them.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import RunConfig
    from .hardware import Hardware
    from .runs import RunDir

DEFAULT_PORT = 29500
LAUNCH_SCRIPT = "launch.sh"


@dataclass(frozen=True)
class Machine:
    """Where this machine sits in a run over several: its rank, and how to reach the first machine."""

    node_rank: int = 0
    main_address: str | None = None
    main_port: int | None = None
    """None: a free port for a run on one machine (two runs side by side must not share one), else 29500."""


def world_size(config: RunConfig) -> int:
    """How many training processes the run has in all."""
    return config.processes * config.nodes


def strategy(config: RunConfig, hardware: Hardware) -> str:
    """"fsdp" for whole-model methods on GPUs (their weights, gradients and optimizer state are sharded), else "ddp"."""
    from .methods import method_spec

    return "fsdp" if hardware.cuda and method_spec(config.method).weights == "whole" else "ddp"


def sharded(config: RunConfig, hardware: Hardware) -> bool:
    """Whether the run's weights are split between its processes (FSDP): then every forward pass gathers them
    from all processes, and no process may score the model alone."""
    return world_size(config) > 1 and strategy(config, hardware) == "fsdp"


def check_world(config: RunConfig, hardware: Hardware, machine: Machine) -> None:
    """A ConfigError for a run this machine cannot start: more GPUs than it has, or several machines without a rank plan."""
    if world_size(config) == 1:
        return
    if hardware.cuda and config.processes > hardware.gpu_count:
        raise ConfigError(f"{config.processes} processes need {config.processes} GPUs; this machine has {hardware.gpu_count}",
                          f"use --gpus {hardware.gpu_count} or fewer")
    from .methods import method_spec

    if (method_spec(config.method).quantized_base or config.load_in_4bit) and not hardware.cuda:
        raise ConfigError(f"{config.method} on a 4-bit base in several CPU processes is not supported",
                          "use --method lora (or leave out --load-in-4bit) for CPU processes")
    if config.nodes > 1 and not machine.main_address:
        raise ConfigError(f"a run over {config.nodes} machines needs the first machine's address",
                          "pass --main-address HOST (the machine with --node-rank 0) on every machine")
    if not 0 <= machine.node_rank < config.nodes:
        raise ConfigError(f"--node-rank {machine.node_rank} is outside 0…{config.nodes - 1}", "number the machines from 0")


def accelerate_config(config: RunConfig, hardware: Hardware, machine: Machine) -> dict[str, Any]:
    """The accelerate config for this run on this machine.

    CPU processes are started by the same torchrun launcher as GPUs (accelerate's own
    multi-CPU path needs MPI); each one trains on the CPU because the trainer is told to.
    """
    mixed = {"bfloat16": "bf16", "float16": "fp16"}.get(hardware.compute_dtype, "no")
    settings: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "FSDP" if strategy(config, hardware) == "fsdp" else "MULTI_GPU",
        "num_processes": world_size(config),
        "num_machines": config.nodes,
        "machine_rank": machine.node_rank,
        "main_process_ip": machine.main_address,
        "main_process_port": machine.main_port or (free_port() if config.nodes == 1 else DEFAULT_PORT),
        "rdzv_backend": "static",
        "same_network": True,
        "mixed_precision": mixed if hardware.cuda else "no",
        "gpu_ids": "all" if hardware.cuda else None,
        "use_cpu": False,
        "downcast_bf16": "no",
        "debug": False,
    }
    if settings["distributed_type"] == "FSDP":
        settings["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "FULL_STATE_DICT",  # the finished model is saved whole, as on one GPU
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
        }
    return {key: value for key, value in settings.items() if value is not None}


def free_port() -> int:
    """A TCP port nothing on this machine listens on now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config_file(run: RunDir, machine: Machine) -> Path:
    """Where this machine's accelerate config goes in the run directory."""
    return run.path / ("accelerate.yaml" if machine.node_rank == 0 else f"accelerate-node{machine.node_rank}.yaml")


def launch_script(run: RunDir, machine: Machine) -> Path:
    """Where this machine's launch command goes in the run directory."""
    return run.path / (LAUNCH_SCRIPT if machine.node_rank == 0 else f"launch-node{machine.node_rank}.sh")


def launch_command(run: RunDir, config: RunConfig, hardware: Hardware, machine: Machine,
                   child_flags: list[str]) -> list[str]:
    """Write this machine's accelerate config and launch.sh into the run directory; the command they hold."""
    import yaml

    from .atomic import atomic_write_text

    settings_file = config_file(run, machine)
    atomic_write_text(settings_file, "# written by tuneforge for this run; `accelerate launch --config_file` reads it\n"
                      + yaml.safe_dump(accelerate_config(config, hardware, machine), sort_keys=False))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(settings_file),
               "-m", "tuneforge.core.train", *child_flags, str(run.path)]
    script = launch_script(run, machine)
    atomic_write_text(script, "#!/bin/sh\n# how tuneforge started this run's training processes on this machine\n"
                      + " ".join(shlex.quote(part) for part in command) + "\n")
    script.chmod(0o755)
    return command


def launch_summary(config: RunConfig, hardware: Hardware) -> str:
    """How many processes of what kind, and how they share the work: "2 GPUs, DDP", "2 CPU processes, DDP over gloo"."""
    what = f"{config.processes} GPU{'s' if config.processes > 1 else ''}" if hardware.cuda else f"{config.processes} CPU processes"
    where = f" on each of {config.nodes} machines" if config.nodes > 1 else ""
    how = strategy(config, hardware).upper() + ("" if hardware.cuda else " over gloo")
    return f"{what}{where}, {how}"


def describe_launch(config: RunConfig, hardware: Hardware) -> str:
    """One line on how a run starts, e.g. for the Train form:
    "2 GPUs, DDP: accelerate launch --config_file RUN_DIR/accelerate.yaml -m tuneforge.core.train RUN_DIR"."""
    if world_size(config) == 1:
        return "1 process: python -m tuneforge.core.train RUN_DIR"
    return f"{launch_summary(config, hardware)}: accelerate launch --config_file RUN_DIR/accelerate.yaml -m tuneforge.core.train RUN_DIR"


def several_processes_running() -> bool:
    """Whether this process is one of several joined in a torch.distributed group (collectives are needed)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
