"""What this machine can train with: GPUs, VRAM, bf16 (GPU or CPU), RAM, free disk."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of CPUs whose matrix units compute in bf16 (Sapphire Rapids and later, Zen 4 and later):
bf16 autocast beats fp32 there; on other CPUs bf16 is emulated and slower than fp32."""
CPU_BF16_VARIABLE = "TUNEFORGE_CPU_BF16"
CPU_AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")
"""/proc/cpuinfo flags of CPUs with AMX tile units, which llama.cpp's AMX weight buffers use (see exporters/gguf/native.py)."""


@dataclass(frozen=True)
class Hardware:
    """A snapshot of the training hardware."""

    cuda: bool
    gpu_name: str | None
    vram_total_gb: float
    vram_free_gb: float
    bf16: bool
    """The GPU computes in bf16 (compute capability 8.0 or later)."""
    ram_total_gb: float
    ram_available_gb: float
    disk_free_gb: float
    """Free space where the run is written."""
    gpu_count: int = 0
    compute_capability: str | None = None
    """The first GPU's CUDA compute capability, e.g. "8.9"."""
    cpu_bf16: bool = False
    """The CPU has bf16 matrix instructions (see CPU_BF16_FLAGS)."""
    cpu_cores: int = 1
    cpu_allocator: str = "glibc"
    """The malloc training processes run on: "tcmalloc" when installed (core/allocator.py), else "glibc"."""

    @property
    def compute_dtype(self) -> str:
        """The dtype training computes in: bf16 where the hardware has it, fp16 on older GPUs, else fp32."""
        if self.cuda:
            return "bfloat16" if self.bf16 else "float16"
        return "bfloat16" if self.cpu_bf16 else "float32"

    @property
    def memory_budget_gb(self) -> float:
        """The memory a run may use: free VRAM on a GPU, available RAM on a CPU."""
        return self.vram_free_gb if self.cuda else self.ram_available_gb

    @property
    def device_label(self) -> str:
        """One line describing the device, for listings and logs."""
        if self.cuda:
            count = f"{self.gpu_count} × " if self.gpu_count > 1 else ""
            return f"{count}{self.gpu_name} ({self.vram_total_gb:.0f} GB, {'bf16' if self.bf16 else 'fp16'})"
        bf16 = ", bf16" if self.cpu_bf16 else ""
        return f"CPU ({self.cores_label}{bf16}, {self.ram_total_gb:.0f} GB RAM, no CUDA GPU)"

    @property
    def cores_label(self) -> str:
        """"1 core", "8 cores"."""
        return f"{self.cpu_cores} core{'' if self.cpu_cores == 1 else 's'}"


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The instruction-set flags the CPU advertises (empty where /proc/cpuinfo is missing)."""
    try:
        line = next((line for line in cpuinfo.read_text(encoding="utf-8").splitlines() if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def env_switch(name: str) -> bool | None:
    """An on/off environment setting: True for 1/on/true/yes, False for 0/off/false/no, None when unset or other."""
    value = os.environ.get(name, "").strip().lower()
    return True if value in ("1", "on", "true", "yes") else False if value in ("0", "off", "false", "no") else None


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU advertises bf16 matrix instructions (False where /proc/cpuinfo is missing),
    and CPU training may use them: TUNEFORGE_CPU_BF16=0 keeps it in fp32 (exactly repeatable figures)."""
    if env_switch(CPU_BF16_VARIABLE) is False:
        return False
    return bool(cpu_flags(cpuinfo) & set(CPU_BF16_FLAGS))


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU advertises AMX tile instructions (Intel Sapphire Rapids and later)."""
    return bool(cpu_flags(cpuinfo) & set(CPU_AMX_FLAGS))


def detect(disk_path: Path | None = None) -> Hardware:
    """Probe the GPUs through torch, the CPU's flags, and RAM and disk through psutil."""
    import psutil
    import torch

    from .allocator import training_allocator

    cuda = torch.cuda.is_available()
    name, total, free, bf16, count, capability = None, 0.0, 0.0, False, 0, None
    if cuda:
        count = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0)
        free_bytes, total_bytes = torch.cuda.mem_get_info(0)
        total, free = total_bytes / 2**30, free_bytes / 2**30
        bf16 = torch.cuda.is_bf16_supported()
        capability = "{}.{}".format(*torch.cuda.get_device_capability(0))
    memory = psutil.virtual_memory()
    disk = shutil.disk_usage(_existing_parent(disk_path) if disk_path else Path.home())
    return Hardware(cuda, name, total, free, bf16, memory.total / 2**30, memory.available / 2**30, disk.free / 2**30,
                    gpu_count=count, compute_capability=capability, cpu_bf16=cpu_has_bf16(), cpu_allocator=training_allocator(),
                    cpu_cores=usable_cpus())


def usable_cpus() -> int:
    """The logical CPUs this process may run on (its affinity: a container or `taskset` can give it fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def usable_cores() -> int:
    """The physical cores among usable_cpus(): one thread per core is what token-by-token generation wants (a
    second hyperthread on the same core only contends for it)."""
    import psutil

    logical, physical = psutil.cpu_count(logical=True) or 1, psutil.cpu_count(logical=False) or 1
    return max(1, usable_cpus() // max(1, logical // physical))


def _existing_parent(path: Path) -> Path:
    """`path`, or its nearest existing parent: a run's disk is known before its folder exists."""
    path = path.expanduser().resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def resolve_method(method: str, hardware: Hardware) -> str:
    """The method that trains here: `method` itself, or what `auto` means on this machine (methods.AUTO_METHOD)."""
    from .methods import auto_method

    return auto_method(hardware.cuda) if method == "auto" else method
