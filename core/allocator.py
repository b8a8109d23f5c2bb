"""Which malloc a training process runs on, and how to start one on tcmalloc.

PyTorch on a CPU allocates and frees a step's activations as thousands of large blocks.
glibc's malloc keeps many of those blocks after they are freed, scattered between live ones,
so the process's memory grows well past what it uses, and fresh pages are faulted in again
and again. tcmalloc (Debian/Ubuntu: libtcmalloc-minimal4) reuses them: on the default model
a LoRA step is ~15 % faster and the peak RSS ~25 % lower (bench/train.py). It is preloaded
into training processes when installed; TUNEFORGE_ALLOCATOR=system turns that off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

TCMALLOC = "libtcmalloc_minimal.so.4"
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")


def tcmalloc_library() -> str | None:
    """tcmalloc's path when it is installed (Linux) and not turned off, else None."""
    if os.environ.get("TUNEFORGE_ALLOCATOR") == "system" or not sys.platform.startswith("linux"):
        return None
    return next((str(Path(d) / TCMALLOC) for d in LIBRARY_DIRS if (Path(d) / TCMALLOC).is_file()), None)


def allocator_in_use() -> str:
    """"tcmalloc" when this process runs on it, else "glibc"."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "glibc"
    return "tcmalloc" if "tcmalloc" in maps else "glibc"


def training_allocator() -> str:
    """The allocator a training process started by tuneforge will run on."""
    return "tcmalloc" if allocator_in_use() == "tcmalloc" or tcmalloc_library() else "glibc"


CUDA_ALLOCATOR_SETTINGS = ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF")
"""Where PyTorch reads its CUDA allocator's settings (the second is the older name, still read)."""


def training_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with tcmalloc preloaded, when it is installed, and PyTorch's CUDA allocator on expandable segments
    unless the person set it up themselves: batches of varying length (padding-free rows most of all) otherwise leave
    reserved blocks of every size that fit no later tensor, and a run that fits on paper runs out of memory."""
    env = dict(env)
    if not any(name in env for name in CUDA_ALLOCATOR_SETTINGS):
        env[CUDA_ALLOCATOR_SETTINGS[0]] = "expandable_segments:True"
    library = tcmalloc_library()
    if library and library not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = ":".join(part for part in (library, env.get("LD_PRELOAD", "")) if part)
    return env


def relaunch_on_tcmalloc() -> None:
    """Start this same command again on tcmalloc (same pid, through exec) when it is installed and
    not loaded yet. Call it before anything is printed or started; it returns when there is nothing to do."""
    if tcmalloc_library() is None or allocator_in_use() == "tcmalloc" or os.environ.get("TUNEFORGE_RELAUNCHED"):
        return
    env = training_environment(os.environ)
    env["TUNEFORGE_RELAUNCHED"] = "1"  # if the preload does not take, do not try again
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
