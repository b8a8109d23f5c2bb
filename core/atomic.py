"""Writes that a crash cannot leave half-done: write beside the target, flush it to disk, then rename.

Every artifact tuneforge writes (config.yaml, adapter/, merged/, GGUF files, reports,
checkpoint markers) goes through these helpers. A full disk while writing becomes a
ResourceError that names the place, and whatever was at the target before is kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ResourceError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""Write errors that mean "no room": a full disk, a quota, or a file-size limit."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write failing for lack of space.

    numpy's `tofile` (which the GGUF writer uses) reports a short write on a full disk as an
    OSError without an errno: "N requested and M written".
    """
    if not isinstance(exc, OSError):
        return False
    return exc.errno in DISK_FULL or (exc.errno is None and "requested and" in str(exc) and "written" in str(exc))


@contextlib.contextmanager
def disk_full_as_error(target: Path) -> Iterator[None]:
    """Turn a failed write for lack of space into a ResourceError naming `target` and its folder."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        target = Path(target)
        free = _free_mib(target.parent)
        raise ResourceError(
            f"the disk ran out of space while writing {target} ({free} MiB free in {target.parent})",
            f"free some disk space and run the command again; {target.name} was not replaced, anything there before is intact",
        ) from None


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a staging folder next to `target`; on success it replaces `target` in one rename.

    The staged files are flushed to disk before the rename, so a power cut leaves the old
    folder or the complete new one. On any error (or Ctrl-C) the staging folder is removed
    and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; the result should not be
    try:
        with disk_full_as_error(target):
            yield staging
            sync_tree(staging)
        previous = None
        if target.exists():
            previous = target.with_name(f".{target.name}.old")
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(target, previous)
        os.replace(staging, target)
        sync_folder(target.parent)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success it is flushed and renamed onto `path`.

    On any error the temporary file is removed and `path` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    partial = Path(name)
    os.chmod(partial, 0o666 & ~_umask())  # mkstemp makes it private; the result should not be
    try:
        with disk_full_as_error(path):
            yield partial
            sync_file(partial)
        os.replace(partial, path)
        sync_folder(path.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so readers see the old content or the new, never a part."""
    path = Path(path)
    with atomic_file(path) as partial:
        partial.write_text(text, encoding="utf-8")


def sync_file(path: Path) -> None:
    """Flush a written file's data (or a folder's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename into it, a new file) to the disk."""
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory; the data is synced
        sync_file(folder)


def sync_tree(folder: Path) -> None:
    """Flush every file under `folder`, and the folders themselves, to the disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            sync_file(Path(root) / name)
        sync_folder(Path(root))


def _free_mib(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free >> 20
    except OSError:
        return 0


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
