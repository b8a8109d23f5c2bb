"""What this machine can train with: CUDA GPU, VRAM, bf16, RAM, free disk."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Hardware:
    """A snapshot of the training hardware."""

    cuda: bool
    gpu_name: str | None
    vram_total_gb: float
    vram_free_gb: float
    bf16: bool
    ram_total_gb: float
    ram_available_gb: float
    disk_free_gb: float

    @property
    def compute_dtype(self) -> str:
        """The dtype training computes in: bf16 where supported, fp16 on older GPUs, fp32 on CPU."""
        if not self.cuda:
            return "float32"
        return "bfloat16" if self.bf16 else "float16"

    @property
    def device_label(self) -> str:
        """One line describing the device, for listings and logs."""
        if self.cuda:
            return f"{self.gpu_name} ({self.vram_total_gb:.0f} GB, {'bf16' if self.bf16 else 'fp16'})"
        return f"CPU ({self.ram_total_gb:.0f} GB RAM, no CUDA GPU)"


def detect(disk_path: Path | None = None) -> Hardware:
    """Probe the GPU through torch, and RAM and disk through psutil."""
    import psutil
    import torch

    cuda = torch.cuda.is_available()
    name, total, free, bf16 = None, 0.0, 0.0, False
    if cuda:
        name = torch.cuda.get_device_name(0)
        free_bytes, total_bytes = torch.cuda.mem_get_info(0)
        total, free = total_bytes / 2**30, free_bytes / 2**30
        bf16 = torch.cuda.is_bf16_supported()
    memory = psutil.virtual_memory()
    disk = shutil.disk_usage(disk_path if disk_path and disk_path.exists() else Path.home())
    return Hardware(cuda, name, total, free, bf16, memory.total / 2**30, memory.available / 2**30, disk.free / 2**30)


def resolve_method(method: str, hardware: Hardware) -> str:
    """`auto` becomes qlora on a CUDA GPU (4-bit saves VRAM) and lora on a CPU (4-bit only slows it)."""
    if method != "auto":
        return method
    return "qlora" if hardware.cuda else "lora"


def rough_fit(params_b: float, hardware: Hardware) -> str:
    """"yes", "slow" or "no" for training a model of `params_b` billion parameters here.

    First-order rule until the memory planner lands: 4-bit QLoRA on a GPU needs about
    0.75 GB per billion parameters plus 2 GB of activations and runtime; LoRA on a CPU keeps
    fp32 weights (4 bytes per parameter) plus the same overheads, and is slow past ~0.6 B.
    """
    if hardware.cuda:
        return "yes" if params_b * 0.75 + 2.0 <= hardware.vram_total_gb * 0.9 else "no"
    if params_b * 4.5 + 2.0 > hardware.ram_total_gb * 0.8:
        return "no"
    return "slow" if params_b > 0.6 else "yes"
