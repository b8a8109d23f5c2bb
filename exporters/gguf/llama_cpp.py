"""llama.cpp's own converter: where tuneforge keeps it, how it is fetched, what it can convert, and running it.

The converter (`convert_hf_to_gguf.py` with its `conversion/` modules and `gguf-py/`, and
`convert_lora_to_gguf.py`) ships in the source distribution of llama-cpp-python, at exactly the
version of the llama.cpp that will read the files it writes. `tuneforge fetch-converter` (run by
`make setup`) takes those files out of that source distribution, the one `pip` already downloaded
to compile llama-cpp-python, into the environment tuneforge is installed in. `TUNEFORGE_LLAMA_CPP`
points at another copy (a llama.cpp checkout) instead.

The converter runs in a child process: its memory and crashes stay out of tuneforge's process.
"""

from __future__ import annotations

import ast
import errno
import functools
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tuneforge.core.errors import ExportError

LOCATION_ENV = "TUNEFORGE_LLAMA_CPP"
"""A folder holding `convert_hf_to_gguf.py` (a llama.cpp checkout) to use instead of the fetched copy."""
FETCH_COMMAND = "tuneforge fetch-converter"
CONVERTER_FILES = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/")
"""What a copy holds, relative to llama.cpp's root (its LICENSE comes along)."""
SOURCE_ROOT = "vendor/llama.cpp/"
"""Where llama.cpp sits inside llama-cpp-python's source distribution."""
LOG_TAIL_LINES = 40
DISK_FULL_WORDS = r"\[Errno (28|27|122)\]|No space left|File too large|Disk quota|requested and \d+ written"
"""How a converter that ran out of room says so (ENOSPC, EFBIG, EDQUOT, numpy's short write)."""


LLAMA_CPP_INSTALL_HINT = "pip install llama-cpp-python (compiles llama.cpp: a C++ compiler and cmake are needed)"


def llama_cpp_python_version() -> str:
    """The installed llama-cpp-python's version: the converter must be the one of the same llama.cpp. An ExportError
    when it is not installed, as on a machine set up to train alone: training goes on, export says what is missing."""
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise ExportError("llama-cpp-python is not installed: no GGUF export, quantization, verification or chat",
                          LLAMA_CPP_INSTALL_HINT) from None


def converter_dir() -> Path:
    """Where the converter is (or will be, once fetched): `$TUNEFORGE_LLAMA_CPP`, else beside this Python's packages."""
    if os.environ.get(LOCATION_ENV):
        return Path(os.environ[LOCATION_ENV]).expanduser().resolve()
    return Path(sys.prefix) / "share" / "tuneforge" / f"llama.cpp-{llama_cpp_python_version()}"


def require_converter() -> Path:
    """The converter's folder; an ExportError naming the command that fetches it when it is not there."""
    folder = converter_dir()
    if not (folder / "convert_hf_to_gguf.py").is_file():
        where = f"${LOCATION_ENV} ({folder})" if os.environ.get(LOCATION_ENV) else str(folder)
        raise ExportError(f"llama.cpp's GGUF converter is not in {where}",
                          f"fetch it once (about 76 MB, from PyPI): {FETCH_COMMAND}  (`make setup` does this)")
    return folder


def fetch_converter(echo: Callable[[str], None] | None = print) -> Path:
    """Take the converter out of the source distribution of the installed llama-cpp-python; returns its folder.

    The copy appears in one rename, so an interrupted fetch leaves nothing half-written.
    """
    target = converter_dir()
    if (target / "convert_hf_to_gguf.py").is_file():
        if echo:
            echo(f"llama.cpp's converter is already in {target}")
        return target
    version = llama_cpp_python_version()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as work:
        if echo:
            echo(f"fetching llama-cpp-python {version}'s source distribution (pip reuses its cached download) …")
        archive = download_source_distribution(version, Path(work))
        staged = Path(work) / "llama.cpp"
        extract(archive, [*CONVERTER_FILES, "LICENSE"], staged)
        if not (staged / "convert_hf_to_gguf.py").is_file():
            raise ExportError(f"{archive.name} holds no {SOURCE_ROOT}convert_hf_to_gguf.py",
                              f"point ${LOCATION_ENV} at a llama.cpp checkout of the same version")
        os.replace(staged, target)
    if echo:
        echo(f"llama.cpp's converter is in {target}")
    return target


def download_source_distribution(version: str, folder: Path) -> Path:
    """llama-cpp-python's source distribution of `version`, downloaded by pip into `folder`."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               f"llama-cpp-python=={version}", "-d", str(folder)]
    try:
        subprocess.run(command, check=True, timeout=900, capture_output=True, text=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = (getattr(exc, "stderr", "") or "").strip().splitlines()
        raise ExportError(f"pip could not download llama-cpp-python {version}'s source distribution"
                          f"{': ' + detail[-1] if detail else ''}",
                          "check the connection to PyPI (or its mirror), then run it again") from None
    return next(folder.glob("llama_cpp_python-*.tar.gz"))


def extract(archive: Path, wanted: Sequence[str], target: Path) -> None:
    """Copy the members of `archive` under llama.cpp's root that start with one of `wanted` into `target`."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            inside = member.name.partition(SOURCE_ROOT)[2]
            if not member.isfile() or not inside or not any(inside == w or inside.startswith(w) for w in wanted):
                continue
            if Path(inside).is_absolute() or ".." in Path(inside).parts:  # never write outside the target
                continue
            destination = target / inside
            destination.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(destination, "wb") as out:  # type: ignore[union-attr]
                shutil.copyfileobj(source, out)


@functools.cache
def _registry(folder: Path) -> dict[str, frozenset[str]]:
    """The converter's own tables of architectures (`conversion/__init__.py`), read without importing it."""
    tree = ast.parse((folder / "conversion" / "__init__.py").read_text(encoding="utf-8"))
    tables = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            if node.target.id in ("TEXT_MODEL_MAP", "MMPROJ_MODEL_MAP"):
                tables[node.target.id] = frozenset(ast.literal_eval(node.value))
    return tables


def fetched_converter() -> Path | None:
    """The converter's folder when it is here to read (llama-cpp-python installed, its converter fetched); else None."""
    try:
        folder = converter_dir()
    except ExportError:
        return None
    return folder if (folder / "conversion" / "__init__.py").is_file() else None


def convertible_architectures() -> frozenset[str]:
    """The HF architecture classes (config.json `architectures`) the converter writes as text models; empty
    when the converter is not here."""
    folder = fetched_converter()
    return _registry(folder).get("TEXT_MODEL_MAP", frozenset()) if folder else frozenset()


def has_vision_projector(architecture: str) -> bool:
    """Whether the converter writes a vision projector (mmproj) file for checkpoints of `architecture`."""
    folder = fetched_converter()
    return folder is not None and architecture in _registry(folder).get("MMPROJ_MODEL_MAP", ())


def run_script(script: str, arguments: Sequence[str], what: str, log_file: Path) -> None:
    """Run one of llama.cpp's conversion scripts on `arguments` in a child process.

    A failure is an ExportError with the converter's own last words, its whole log kept in `log_file`;
    a write that failed for lack of space is an OSError with that errno (for `disk_full_as_error`).
    """
    command = [sys.executable, str(require_converter() / script), *arguments]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode == 0:
        return
    if done.returncode < 0:
        reason = f"it was killed by signal {-done.returncode}" + (" (out of memory?)" if done.returncode == -9 else "")
    else:
        reason = last_words(done.stderr)
        if re.search(DISK_FULL_WORDS, reason):
            raise OSError(errno.ENOSPC, reason)
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(done.stdout + done.stderr, encoding="utf-8")
        hint = f"its log: {log_file}"
    except OSError:
        hint = "the converter's log could not be kept either: check the disk"
    raise ExportError(f"llama.cpp's converter could not convert {what}: {reason}", hint)


def last_words(log: str) -> str:
    """The line of a converter's log that says why it stopped: an exception, else its last error."""
    lines = [line.strip() for line in log.splitlines()[-LOG_TAIL_LINES:] if line.strip()]
    for line in reversed(lines):
        if re.match(r"[\w.]*(Error|Exception)\b", line):
            return line
    for line in reversed(lines):
        if line.startswith("ERROR:"):
            return line.split(":", 2)[-1]
    return lines[-1] if lines else "it stopped without a message"
