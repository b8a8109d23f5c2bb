"""`tuneforge doctor`: is this machine ready to fine-tune, and if not, the one line that fixes it.

Each check reports ok, warn (works, but slower or with less) or fail (a run would break),
with what it found and, when not ok, the fix. Checks run the real thing where it is cheap:
a 4-bit matmul through bitsandbytes, a tiny quantized GGUF evaluated by llama.cpp in a child
process, a look inside the default model's GGUF, a file written where runs go.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .methods import QLORA_ON_CPU

if TYPE_CHECKING:
    from .config import RunConfig
    from .hardware import Hardware

MIN_PYTHON = (3, 10)
TORCH_PIN = "torch==2.13.0"
LLAMA_CUDA_BUILD = "CMAKE_ARGS=-DGGML_CUDA=on pip install --force-reinstall --no-cache-dir llama-cpp-python"


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, ok / warn / fail, what was found, and how to fix it."""

    name: str
    status: str
    detail: str
    fix: str = ""


def run_checks(config: RunConfig | None = None) -> list[Check]:
    """Every check, in the order a fix would be made; `config` adds the plan of that run (else of the default model
    on the sample data, the first run the app makes)."""
    from .hardware import detect
    from .paths import tuneforge_home

    hardware = detect(tuneforge_home())
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("python", _python), ("torch", _torch), ("gpu", lambda: _gpu(hardware)),
        ("bitsandbytes", lambda: _bitsandbytes(hardware)), ("llama-cpp-python", lambda: _llama_cpp(hardware)),
        ("gguf converter", _converter), ("default model", _default_model), ("tcmalloc", _allocator), ("run folder", _home_writable),
        ("headroom", lambda: _headroom(config, hardware)),
    ]
    return [_guarded(name, check) for name, check in checks]


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """A check that itself breaks is a failed check, not a crashed doctor."""
    from .errors import TuneforgeError

    try:
        return check()
    except TuneforgeError as exc:
        return Check(name, "fail", exc.message, exc.hint)
    except Exception as exc:  # noqa: BLE001 - the doctor reports whatever it meets
        return Check(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}",
                     "report this with the output of `tuneforge doctor`")


def _python() -> Check:
    version = platform.python_version()
    if sys.version_info < MIN_PYTHON:
        return Check("python", "fail", f"{version} ({sys.executable})", f"install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer")
    return Check("python", "ok", f"{version} ({sys.executable})")


def _torch() -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("torch", "fail", f"not importable ({exc})", f"pip install {TORCH_PIN}")
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    if not torch.version.cuda and _nvidia_driver():
        return Check("torch", "fail", f"{torch.__version__}, {build}, but this machine has an NVIDIA GPU",
                     f"pip install --force-reinstall {TORCH_PIN} (Linux wheels from PyPI include CUDA)")
    return Check("torch", "ok", f"{torch.__version__}, {build}")


def _gpu(hardware: Hardware) -> Check:
    driver = _nvidia_driver()
    if hardware.cuda:
        count = f"{hardware.gpu_count} × " if hardware.gpu_count > 1 else ""
        return Check("gpu", "ok", f"{count}{hardware.gpu_name}, compute {hardware.compute_capability}, "
                                  f"{hardware.vram_free_gb:.1f} of {hardware.vram_total_gb:.1f} GB free, driver {driver or '?'}")
    if driver:
        return Check("gpu", "fail", f"NVIDIA driver {driver} is installed but CUDA does not start from torch",
                     "update the NVIDIA driver to one that supports torch's CUDA version (see `nvidia-smi`), then reboot")
    return Check("gpu", "warn", f"no CUDA GPU: training runs on the CPU ({hardware.cores_label}), fine for models up to ~0.5 B",
                 "for larger models, use a machine with an NVIDIA GPU")


def _nvidia_driver() -> str | None:
    """The loaded NVIDIA kernel driver's version (Linux), or from nvidia-smi; None without one."""
    version_file = Path("/proc/driver/nvidia/version")
    if version_file.is_file():
        words = version_file.read_text(errors="replace").split()
        return next((w for w in words if w[:1].isdigit() and w.count(".") >= 1), "unknown")
    if shutil.which("nvidia-smi"):
        try:
            found = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return found.stdout.strip().splitlines()[0] if found.returncode == 0 and found.stdout.strip() else None
    return None


def _bitsandbytes(hardware: Hardware) -> Check:
    """A real nf4 matmul on this machine's device: what QLoRA does in every layer."""
    try:
        import bitsandbytes as bnb
        import torch
    except ImportError as exc:
        return Check("bitsandbytes", "fail", f"not importable ({exc})", "pip install -U bitsandbytes")
    device = "cuda" if hardware.cuda else "cpu"
    dtype = torch.bfloat16 if hardware.cuda else torch.float32
    layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=dtype, quant_type="nf4")
    reference = layer.weight.data.clone()
    layer = layer.to(device)
    x = torch.randn(2, 64, dtype=dtype, device=device)
    error = (layer(x).float() - x.float() @ reference.to(device).float().T).abs().max().item()
    if error > 0.5:
        return Check("bitsandbytes", "fail", f"{bnb.__version__}: a 4-bit matmul on {device} is wrong (error {error:.2f})",
                     "pip install -U bitsandbytes")
    where = "on the GPU" if hardware.cuda else f"on the CPU ({QLORA_ON_CPU})"
    return Check("bitsandbytes", "ok", f"{bnb.__version__}, 4-bit matmul works {where}")


def _llama_cpp(hardware: Hardware) -> Check:
    try:
        import llama_cpp
    except ImportError as exc:
        from tuneforge.exporters.gguf.llama_cpp import LLAMA_CPP_INSTALL_HINT

        return Check("llama-cpp-python", "fail", f"not importable ({exc}): no GGUF quantization, verification or chat",
                     LLAMA_CPP_INSTALL_HINT)
    features = llama_cpp.llama_print_system_info().decode(errors="replace")
    flags = [part.split("=")[0].split(":")[-1].strip() for part in features.split("|") if part.strip().endswith("= 1")]
    offload = llama_cpp.llama_supports_gpu_offload()
    detail = f"{llama_cpp.__version__}, GPU offload {'yes' if offload else 'no'}, {' '.join(flags[:8])}"
    evaluated = _llama_evaluates()
    if evaluated.status != "ok":
        return Check("llama-cpp-python", evaluated.status, f"{detail}; {evaluated.detail}", evaluated.fix)
    detail += f"; {evaluated.detail}"
    if hardware.cuda and not offload:
        return Check("llama-cpp-python", "warn", f"{detail}: chat and verification run on the CPU", LLAMA_CUDA_BUILD)
    return Check("llama-cpp-python", "ok", detail)


def _llama_evaluates() -> Check:
    """Evaluate a tiny model in each quantized type exports write, each in a child process:
    a llama.cpp that crashes on this CPU fails here, not after an hour of training."""
    from tuneforge.exporters.gguf.native import LlamaCrashed, extra_buffers_allowed
    from tuneforge.exporters.gguf.probe import evaluate_in_child, write_probe_files

    with tempfile.TemporaryDirectory(prefix="tuneforge-doctor-") as folder:
        files = write_probe_files(Path(folder))
        for qtype, path in files.items():
            try:
                found = evaluate_in_child(path)
            except LlamaCrashed as exc:
                return Check("llama-cpp-python", "fail", f"a {qtype} model crashes llama.cpp: {exc.cause}", exc.hint)
            if "error" in found or not found.get("finite"):
                return Check("llama-cpp-python", "fail", f"a {qtype} model gives no usable logits ({found.get('error', 'not finite')})",
                             "pip install --force-reinstall --no-cache-dir llama-cpp-python")
    workaround = "" if extra_buffers_allowed() else " (AMX workaround on: plain CPU weight buffers)"
    return Check("llama-cpp-python", "ok", f"{' and '.join(files)} evaluate in a child process{workaround}")


def _converter() -> Check:
    from tuneforge.exporters.gguf.llama_cpp import convertible_architectures, require_converter

    folder = require_converter()  # an ExportError (a failed check) naming the command that fetches it
    return Check("gguf converter", "ok", f"llama.cpp's own, {len(convertible_architectures())} architectures, in {folder}")


def _default_model() -> Check:
    from .errors import ModelError
    from .models import default_gguf_path
    from .weight_integrity import check_gguf

    try:
        path = default_gguf_path()
        check_gguf(path)
    except ModelError as exc:
        return Check("default model", "fail", exc.message, exc.hint)
    return Check("default model", "ok", f"SmolLM2-135M-Instruct, {path.stat().st_size / 2**20:.0f} MiB GGUF, complete")


def _allocator() -> Check:
    from .allocator import tcmalloc_library

    library = tcmalloc_library()
    if library:
        return Check("tcmalloc", "ok", f"{library} (CPU training is faster and leaner on it)")
    if not sys.platform.startswith("linux"):
        return Check("tcmalloc", "ok", "not used on this system")
    if os.environ.get("TUNEFORGE_ALLOCATOR") == "system":
        return Check("tcmalloc", "ok", "turned off (TUNEFORGE_ALLOCATOR=system)")
    return Check("tcmalloc", "warn", "not installed: CPU training uses glibc's malloc (slower, ~25 % more memory)",
                 "sudo apt-get install libtcmalloc-minimal4")


def _home_writable() -> Check:
    from .paths import tuneforge_home

    home = tuneforge_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("run folder", "fail", f"cannot write to {home} ({exc.strerror})",
                     "set TUNEFORGE_HOME to a folder you can write to")
    return Check("run folder", "ok", f"{home}")


def _headroom(config: RunConfig | None, hardware: Hardware) -> Check:
    """Memory and disk for a planned run: training after auto-fit, then merge and export. Without a config, the
    first run a person makes — the default model on the sample data — planned as the app's Train form plans it
    (from the data's own lengths, not every example max_length long: 6.6 GB where the form said 3.9)."""
    from .api.runs import plan_run
    from .config import RunConfig
    from .demo import DEMO_DATA, demo_file

    sample = str(demo_file(DEMO_DATA))
    config = config or RunConfig(data=sample)
    plan = plan_run(config, with_data=config.data != "-")
    fit = plan.fit
    data = " on the sample data" if config.data == sample else ""
    what = f"{plan.model} {plan.method}{data} (batch {fit.batch_size}×{fit.grad_accum}, {fit.max_length} tokens)"
    problems = [f"training needs {fit.plan.total_gb:.1f} GB of {fit.plan.budget_gb:.1f} GB"] if fit.plan.verdict == "too big" else []
    for phase in (plan.merge, plan.export):
        problems += [f"{phase.phase} needs {need}" for need in phase.shortfalls(hardware.ram_available_gb, hardware.disk_free_gb)]
    detail = (f"{what}: training {fit.plan.total_gb:.1f} of {fit.plan.budget_gb:.1f} GB, "
              f"RAM {hardware.ram_available_gb:.1f} GB free, disk {hardware.disk_free_gb:.0f} GB free")
    if problems:
        return Check("headroom", "fail", f"{detail}; " + "; ".join(problems),
                     "free RAM or disk, or plan a smaller run (`tuneforge plan` shows each term)")
    return Check("headroom", "ok", detail)
