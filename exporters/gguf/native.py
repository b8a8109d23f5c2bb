"""llama.cpp is native code: every GGUF load goes through `open_llama`, and work a crash must not
take down runs in a child process (`run_child`) whose death by a signal becomes a LlamaCrashed
error that names the file, the signal and what to do.

The AMX workaround: llama-cpp-python builds llama.cpp for the CPU it is installed on, and on
CPUs with AMX tile units (Intel Sapphire Rapids and later) its AMX weight buffers trap with
"Illegal instruction" the first time they evaluate q8_0/q4 weights. Loading with
`use_extra_bufts = False` keeps the weights in plain CPU buffers, which work. It is set only
where the CPU reports AMX: elsewhere the extra buffers are llama.cpp's weight repacking, which
makes q4 files faster. TUNEFORGE_LLAMA_EXTRA_BUFTS=1 or 0 overrides the choice (for a
llama-cpp-python whose AMX code is fixed, or to test the workaround on another CPU).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneforge.core.errors import ExportError
from tuneforge.core.hardware import cpu_has_amx, env_switch, usable_cores, usable_cpus

EXTRA_BUFTS_VARIABLE = "TUNEFORGE_LLAMA_EXTRA_BUFTS"
PORTABLE_BUILD = 'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --force-reinstall --no-cache-dir llama-cpp-python'
"""Rebuilds llama.cpp for a generic x86-64 CPU (AVX2, no AVX-512 or AMX): slower, but it runs anywhere."""
_LOADING = threading.Lock()  # open_llama swaps a module-level function while a model loads


class LlamaCrashed(ExportError):
    """llama.cpp ended the process that ran it (a signal, not an exception)."""

    def __init__(self, message: str, hint: str = "", cause: str = "") -> None:
        super().__init__(message, hint)
        self.cause = cause or message
        """What happened, without the file it happened to (the message names both)."""


def extra_buffers_allowed() -> bool:
    """Whether models load with llama.cpp's extra (repacking, AMX) weight buffers on this machine."""
    forced = env_switch(EXTRA_BUFTS_VARIABLE)
    return forced if forced is not None else not cpu_has_amx()


@contextlib.contextmanager
def open_llama(path: Path, **options: Any) -> Iterator[Any]:
    """A llama_cpp.Llama for the GGUF at `path` (options as Llama takes them), loaded with the safe
    buffer setting for this CPU, and closed on exit (its destructor is noisy at interpreter shutdown).

    Threads, unless given: one per physical core this process may use for generation, every usable CPU for prompts.
    llama-cpp-python's own defaults count the whole machine and halve it for generation, assuming two threads per
    core: a machine without hyperthreads generates on half its cores, a container limited to a few CPUs oversubscribes.
    """
    import llama_cpp
    import llama_cpp.llama as llama_module

    default_params = llama_module.llama_cpp.llama_model_default_params
    allowed = extra_buffers_allowed()

    def safe_params() -> Any:
        params = default_params()
        params.use_extra_bufts = allowed
        return params

    # Llama() builds its model parameters from llama_model_default_params() and loads the model
    # in its constructor, without exposing use_extra_bufts: give it parameters that carry it.
    options = {"n_threads": usable_cores(), "n_threads_batch": usable_cpus(), **options}
    with _LOADING:
        llama_module.llama_cpp.llama_model_default_params = safe_params
        try:
            llm = llama_cpp.Llama(str(path), verbose=False, **options)
        finally:
            llama_module.llama_cpp.llama_model_default_params = default_params
    try:
        yield llm
    finally:
        llm.close()


def describe_crash(returncode: int, subject: Path, doing: str, output: str = "") -> LlamaCrashed:
    """The error for a llama.cpp child that died with `returncode` (negative: by a signal) while `doing`."""
    said = " / ".join(line.strip() for line in output.strip().splitlines()[-3:] if line.strip())
    if returncode < 0:
        try:
            how = f"llama.cpp crashed ({signal.Signals(-returncode).name})"
        except ValueError:
            how = f"llama.cpp crashed (signal {-returncode})"
    else:
        how = f"the llama.cpp process failed (exit code {returncode})"
    cause = f"{how} while {doing}" + (f"; its last words: {said}" if said else "")
    if returncode == -signal.SIGILL:
        if extra_buffers_allowed() and cpu_has_amx():
            hint = f"unset {EXTRA_BUFTS_VARIABLE} (this CPU's AMX units need the workaround it turns off)"
        else:
            hint = f"llama-cpp-python was built for another CPU; rebuild it for any x86-64 CPU: {PORTABLE_BUILD}"
    elif returncode == -signal.SIGKILL:
        hint = "it was killed, usually by the out-of-memory killer: close other programs or pick a smaller GGUF type"
    else:
        hint = ("the file may be damaged or use something this llama-cpp-python cannot run: export it again, "
                "or upgrade llama-cpp-python (`pip install -U llama-cpp-python`); `tuneforge doctor` checks llama.cpp")
    return LlamaCrashed(f"{subject}: {cause}", hint, cause)


def child_command(module: str, *args: str) -> list[str]:
    """`python -m module args…` through this Python."""
    return [sys.executable, "-m", module, *args]


def run_child(module: str, args: list[str], subject: Path, doing: str, timeout: float | None = None) -> dict[str, Any]:
    """Run `python -m module args…` and return the JSON object it printed last on stdout.

    The child's own foreseeable failures come back as the JSON it printed ({"error", "hint"});
    a death by a signal (or a silent non-zero exit) raises LlamaCrashed naming `subject`.
    """
    try:
        done = subprocess.run(child_command(module, *args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired:
        raise LlamaCrashed(f"{subject}: llama.cpp did not finish {doing} within {timeout:.0f} s",
                           "the machine may be too slow or short of memory for this file") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    raise describe_crash(done.returncode, subject, doing, done.stderr)


def child_main(work: Any) -> None:
    """The body of a one-shot child: print `work()`'s JSON-able result, or its TuneforgeError as {"error", "hint"}."""
    from tuneforge.core.errors import TuneforgeError

    try:
        result = work()
    except TuneforgeError as exc:
        result = {"error": exc.message, "hint": exc.hint}
    print(json.dumps(result), flush=True)
