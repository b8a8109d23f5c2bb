"""A published run's model card: the hub's metadata fields, then what the run can show for itself — the base and its
licence, the data's shape and size (never the data), the method and every setting, the training curve, the eval
table, the GGUF verification and the forgetting figures, and how to run it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .runs import RunDir


def card_metadata(run: RunDir, what: list[str]) -> dict[str, Any]:
    """The card's YAML fields as the hub reads them: base_model (for the model tree), library_name, tags, license."""
    from .catalog import find_spec

    config = run.load_config()
    spec = find_spec(config.model)
    adapter = "adapter" in what
    tags = ["tuneforge", config.method, *(["gguf"] if "gguf" in what else []), *(["lora"] if adapter else [])]
    metadata: dict[str, Any] = {"library_name": "peft" if adapter else "transformers", "tags": tags,
                                "pipeline_tag": "text-generation"}
    if spec is not None:
        metadata.update(base_model=spec.hub_id, license=_hub_licence(spec.license))
    return metadata


def _hub_licence(licence: str) -> str:
    """The hub's licence identifier: its own list names the well-known ones; a model's own licence is 'other'."""
    return licence if licence in ("apache-2.0", "mit", "llama3.1", "llama3.2", "llama3.3", "gemma", "cc-by-4.0") else "other"


def card_body(run: RunDir, what: list[str]) -> str:
    """The card's Markdown below the metadata."""
    from .catalog import find_spec

    config = run.load_config()
    spec = find_spec(config.model)
    history = run.history()
    result = history.finished.result if history.finished else None
    base = f"[{spec.hub_id}](https://huggingface.co/{spec.hub_id})" if spec else f"`{Path(config.model).name}`"
    sections = [f"# {run.name}\n\nA fine-tune of {base} made with tuneforge ({config.method}); this repository holds "
                f"{_listing(what)}."]
    if spec is not None:
        gated = " It is gated: accept its licence on the hub before use." if spec.gated else ""
        sections.append(f"## Base model\n\n{spec.hub_id} ({spec.family}, {spec.size_label} parameters), licence "
                        f"{spec.license}; this fine-tune is bound by it.{gated}")
    sections.append(_data_section(config))
    settings = without_folders("\n".join(line for line in config.to_yaml().splitlines()
                                          if not line.startswith(("data:", "eval_data:"))))
    sections.append(f"## Method and settings\n\n{config.method}, every setting as trained (config.yaml; the data's "
                    f"paths left out):\n\n```yaml\n{settings}\n```")
    if result is not None:
        sections.append(_training_section(history, result))
    for title, text in (("Evaluation", _eval_table(run)), ("GGUF verification", _verification_table(run))):
        if text:
            sections.append(f"## {title}\n\n{text}")
    sections.append(_how_to_run(run, what, spec.hub_id if spec else None))
    return "\n\n".join(sections) + "\n"


def _listing(what: list[str]) -> str:
    names = {"adapter": "the LoRA adapter", "merged": "the merged model (safetensors)", "gguf": "GGUF files verified against the trained model"}
    items = [names[item] for item in what]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _data_section(config: Any) -> str:
    """The data's shape, size and token figures, measured as the run measured them (never the data itself)."""
    from .api.data import check_data

    try:
        report = check_data(config.data, config.model, config.max_length, config.eval_split, config.columns, config.seed,
                            config.data_split, config.train_reasoning, config.chat_template)
    except Exception:  # noqa: BLE001 - data moved or gone since training: the card says so rather than failing the push
        report = None
    stats = report.stats if report else None
    if stats is None:
        return "## Data\n\nThe training data was not at hand when this card was written; the data itself is not published."
    held_out = f"{stats.eval_examples} held out for evaluation" if stats.eval_examples else "none held out"
    lengths = stats.length_summary()
    return (f"## Data\n\nThe person's own data, not published: {stats.records} records in the {stats.shape} shape, "
            f"{stats.train_examples} training examples ({held_out}), {stats.total_tokens:,} tokens of which "
            f"{stats.trained_tokens:,} trained (the answers); examples of {lengths['min']}–{lengths['max']} tokens "
            f"(median {lengths['median']}).")


def _training_section(history: Any, result: Any) -> str:
    """The curve in a few figures, the memory and speed, and the forgetting figures."""
    from .general_answers import forgetting_line

    losses = [step.loss for step in history.steps]
    curve = f"loss {losses[0]:.3f} at step 1 → {losses[-1]:.3f} at step {result.steps}" if losses else f"{result.steps} steps"
    lines = [f"- {curve}" + (f"; eval loss {result.eval_loss:.3f}" if result.eval_loss is not None else ""),
             f"- {result.trainable_params:,} of {result.total_params:,} parameters trained, peak memory "
             f"{result.peak_memory_gb:.2f} GB, {result.tokens_per_second:.0f} tokens/s, {result.runtime_s:.0f} s"]
    forgetting = forgetting_line(result)
    if forgetting:
        lines.append(f"- {forgetting} (everyday questions the base answered right, asked again after training)")
    return "## Training\n\n" + "\n".join(lines)


def _eval_table(run: RunDir) -> str | None:
    """`tuneforge eval`'s table (base, tuned, each GGUF), when the run was evaluated."""
    from .evaluation import EVAL_FOLDER, TABLE_FILE

    table = run.path / EVAL_FOLDER / TABLE_FILE
    return f"```\n{without_folders(table.read_text(encoding='utf-8').strip())}\n```" if table.is_file() else None


def without_folders(text: str) -> str:
    """`text` with every absolute path cut to its last part: a public card names files, not the folders of the
    person's machine."""
    return re.sub(r"(?<![\w.])/(?:[^\s/]+/)+", "", text)


def _verification_table(run: RunDir) -> str | None:
    """Each exported GGUF with every check it passed or failed."""
    from tuneforge.exporters.report import read_report

    report = read_report(run.export)
    if report is None or not report.files:
        return None
    rows = ["| file | type | verdict | checks |", "| --- | --- | --- | --- |"]
    for entry in report.files:
        checks = "; ".join(f"{'✓' if check.passed else '✗'} {check.name}: {check.detail}" for check in entry.checks)
        rows.append(f"| {Path(entry.file).name} | {entry.gguf_type} | {'passed' if entry.passed else 'failed (not published)'} | {checks} |")
    return "\n".join(rows)


def _how_to_run(run: RunDir, what: list[str], base_hub_id: str | None) -> str:
    """Commands for the tools people use: Ollama and llama.cpp for a GGUF, transformers and peft otherwise."""
    from tuneforge.exporters.report import exported_model

    lines = ["## How to run it"]
    if "gguf" in what:
        gguf = exported_model(run.export)
        name = gguf.name if gguf else "MODEL.gguf"
        lines.append(f"Ollama (with the Modelfile here): `ollama create {run.name.lower()} -f Modelfile` then "
                     f"`ollama run {run.name.lower()}`.\n\nllama.cpp: `llama-cli -m {name} -cnv`.")
    if "merged" in what:
        lines.append("transformers: `AutoModelForCausalLM.from_pretrained(REPO)` and its tokenizer, then chat through its "
                     "chat template.")
    if "adapter" in what and base_hub_id:
        lines.append(f"peft: load `{base_hub_id}`, then `PeftModel.from_pretrained(base, REPO)`.")
    return "\n\n".join(lines)
