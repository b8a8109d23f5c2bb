"""`tuneforge push`: a run published to the Hugging Face Hub — its adapter, merged model and verified GGUFs, with a
model card generated from the run's own evidence (settings, data figures, training curve, eval table, GGUF
verification, forgetting) and the hub's metadata (base_model, library_name, tags, license), so the hub shows the
model tree. `--dry-run DIR` writes exactly what would be uploaded.

The upload is one commit through `huggingface_hub` (`create_repo`, `upload_folder`): the hub applies all of it or
none. The token comes from the environment (HF_TOKEN) or the hub's own login, never from a file tuneforge writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .errors import ConfigError, PublishError
from .runs import RunDir

WHAT = ("adapter", "merged", "gguf")
"""What a run can publish."""
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What peft needs of an adapter: its config and weights."""
CARD = "README.md"
"""The model card's name in the repository, as the hub reads it."""


def published_files(run: RunDir, what: list[str]) -> dict[str, Path]:
    """The run's files `what` names, by their name in the repository. Only GGUFs that passed verification go; what a
    run does not have is a ConfigError naming how to make it."""
    from tuneforge.exporters.report import passed_files

    unknown = sorted(set(what) - set(WHAT))
    if unknown or not what:
        raise ConfigError(f"--what {','.join(what)}: not {', '.join(unknown) or 'given'}", f"name some of: {', '.join(WHAT)}")
    sources: list[Path] = []
    if "adapter" in what:
        if not (run.adapter / "adapter_config.json").is_file():
            raise ConfigError(f"{run.path}: no trained adapter to push", f"train it first (tuneforge train {run.path}), or push merged")
        sources += [run.adapter / name for name in ADAPTER_FILES]
    if "merged" in what:
        if not (run.merged / "config.json").is_file():
            raise ConfigError(f"{run.path}: not merged yet", f"merge it first: tuneforge merge {run.path}")
        sources += [path for path in run.merged.iterdir() if path.is_file()]
    if "gguf" in what:
        verified = passed_files(run.export)
        if not verified:
            raise ConfigError(f"{run.path}: no GGUF passed verification", f"export it first: tuneforge export {run.path}")
        sources += verified + [path for path in (run.export / "Modelfile",) if path.is_file()]
    files: dict[str, Path] = {}
    for source in sources:
        files.setdefault(source.name, source)  # a tokenizer file the adapter and merged share goes once
    return files


def push(run: RunDir, repo: str, what: list[str], private: bool = False, dry_run: Path | None = None,
         echo: Any = print) -> list[str]:
    """Publish the run to hub repository `repo` (created if needed), or with `dry_run` write there what would go; the
    names of the files in the repository, the card (README.md) first."""
    if "/" not in repo.strip("/"):
        raise ConfigError(f"--repo {repo}: not OWNER/NAME", "e.g. --repo your-name/brindlewick-smollm2")
    if dry_run is not None and dry_run.exists() and any(dry_run.iterdir()):
        raise ConfigError(f"{dry_run}: already exists and is not empty", "name a new folder for --dry-run")
    files = published_files(run, what)
    files.pop(CARD, None)  # the card is the run's own
    card = model_card(run, what)
    if dry_run is not None:
        dry_run.mkdir(parents=True, exist_ok=True)
        (dry_run / CARD).write_text(card, encoding="utf-8")
        for name, source in files.items():
            shutil.copy2(source, dry_run / name)
    else:
        if echo:
            echo(f"uploading {len(files) + 1} files ({sum(f.stat().st_size for f in files.values()) / 2**20:.0f} MiB) to {repo} …")
        _upload(files, card, repo, private, f"Upload {', '.join(what)} of {run.name} (tuneforge)")
    return [CARD, *files]


def _upload(files: dict[str, Path], card: str, repo: str, private: bool, message: str) -> None:
    """One commit of `files` (sent from where they are: a merged model is not copied first) and the card to the hub;
    what goes wrong is a PublishError with a hint, and nothing is half-pushed."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi()
    operations = [CommitOperationAdd(CARD, card.encode("utf-8")),
                  *(CommitOperationAdd(name, str(source)) for name, source in files.items())]
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        api.create_commit(repo, operations, commit_message=message)
    except OfflineModeIsEnabled:
        raise PublishError(f"{repo}: the hub is switched off here (HF_HUB_OFFLINE=1)",
                           "unset HF_HUB_OFFLINE on a connected machine, or write the repository with --dry-run DIR") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        hint = ("log in with `hf auth login`, or set HF_TOKEN to a token that may write to it" if status in (401, 403)
                else "check the repository name and your connection; nothing was uploaded (the upload is one commit)")
        raise PublishError(f"{repo}: the hub refused the upload ({status or type(exc).__name__})", hint) from None
    except ValueError as exc:  # an answer the library cannot read: a proxy's page, an endpoint that is not the hub
        raise PublishError(f"{repo}: the hub's answer could not be read ({exc})",
                           "check HF_ENDPOINT and the connection; nothing was uploaded (the upload is one commit)") from None
    except Exception as exc:  # noqa: BLE001 - no connection, DNS, a proxy: OSError, or the hub library's HTTP client's own errors
        raise PublishError(f"{repo}: the hub cannot be reached ({type(exc).__name__}: {exc})",
                           "check the connection; nothing was uploaded (the upload is one commit)") from None


def model_card(run: RunDir, what: list[str]) -> str:
    """The README.md of the published repository: the hub's metadata (YAML), then the run's evidence."""
    from huggingface_hub import ModelCard, ModelCardData

    from .model_card import card_body, card_metadata

    card = ModelCard(f"---\n{ModelCardData(**card_metadata(run, what)).to_yaml()}\n---\n\n{card_body(run, what)}")
    return str(card)
