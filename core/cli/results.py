"""The commands that use a trained run: export (to verified GGUF files), chat, and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneforge.exporters.gguf.types import DEFAULT_TYPES, GGUF_TYPES

from ..errors import ConfigError, ExportError
from .app import app, print_export, progress_lines, say


@app.command()
def export(
    source: Annotated[Path, typer.Argument(help="A trained run directory, or a HF model folder.")],
    quant: Annotated[str, typer.Option(help=f"GGUF types, comma-separated: {', '.join(GGUF_TYPES)}.")] = ",".join(DEFAULT_TYPES),
    out: Annotated[Path | None, typer.Option(help="Output folder (default: RUN_DIR/export, or MODEL_DIR-gguf beside a model folder).")] = None,
    adapter_only: Annotated[bool, typer.Option("--adapter-only", help="Write the LoRA adapter as a GGUF adapter (plus an f16 base) instead of merged weights.")] = False,
) -> int:
    """Convert to GGUF, quantize, verify every file against the model, and write an Ollama Modelfile."""
    from tuneforge.exporters.gguf.types import parse_gguf_types

    from ..api import export as export_api

    if adapter_only:
        result = export_api.export_adapter(source, out, echo=say)
    else:
        result = export_api.export(source, parse_gguf_types(quant), out, echo=say)
    return 0 if print_export(result) else ExportError.exit_code


@app.command("fetch-converter")
def fetch_converter() -> None:
    """Fetch llama.cpp's own GGUF converter (from llama-cpp-python's source distribution, same version); `make setup` runs it."""
    from tuneforge.exporters.gguf.llama_cpp import fetch_converter as fetch

    fetch(echo=say)


@app.command()
def chat(
    sources: Annotated[list[str], typer.Argument(help="A .gguf file, a run directory (its verified GGUF, else its merged model), or a model; several runs of one base share it.")],
    prompt: Annotated[str | None, typer.Option(help="Print one answer to this and exit.")] = None,
    system: Annotated[str, typer.Option(help="A system prompt put before the conversation.")] = "",
    temperature: Annotated[float, typer.Option(help="0 answers greedily (the same answer every time); up to 2 samples.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Sample from the smallest set of tokens this likely (with --temperature).")] = 1.0,
    max_tokens: Annotated[int, typer.Option(help="The longest answer, in tokens.")] = 256,
) -> int:
    """Chat with a GGUF through llama.cpp (or a run or model through transformers): one answer with --prompt, else interactive.

    Several run directories load their common base once with each run's adapter: --prompt
    prints every adapter's answer; interactively, `/use NAME` switches (`/use base` for none).
    """
    from ..api.chat import Sampling, interactive_chat, load_adapters_chat, load_chat_model

    sampling = Sampling(temperature, top_p, max_tokens, system)
    model = load_chat_model(sources[0]) if len(sources) == 1 else load_adapters_chat([Path(s) for s in sources])
    if prompt is not None:
        for name in model.adapters or (None,):
            if name is not None:
                model.use(name)
                say(f"[{name}]")
            say("".join(sampling.stream(model, [{"role": "user", "content": prompt}])).strip())
        model.close()
        return 0
    interactive_chat(model, say, sampling)
    model.close()
    return 0


@app.command()
def push(
    run_dir: Annotated[Path, typer.Argument(help="The run to publish.")],
    repo: Annotated[str, typer.Option(help="The hub repository, OWNER/NAME (created if it does not exist).")],
    what: Annotated[str, typer.Option(help="What to publish, comma-separated: adapter, merged, gguf (verified files only).")] = "adapter,gguf",
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
    dry_run: Annotated[Path | None, typer.Option("--dry-run", help="Write what would be uploaded into this folder instead.")] = None,
) -> int:
    """Publish a run to the Hugging Face Hub with a model card made from its evidence (settings, curve, eval, GGUF checks, forgetting).

    The token comes from HF_TOKEN or `hf auth login`. The upload is one commit: all of it lands, or none.
    """
    from ..api.publish import push as publish
    from ..runs import RunDir

    run = RunDir(run_dir.expanduser().resolve())
    if not run.config_file.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)", "name a run directory; `tuneforge runs` lists them")
    files = publish(run, repo, [part.strip() for part in what.split(",") if part.strip()], private, dry_run, echo=say)
    if dry_run is not None:
        say(f"wrote {len(files)} files into {dry_run} (the card: {dry_run / 'README.md'}); nothing was uploaded")
    else:
        say(f"published {len(files)} files: https://huggingface.co/{repo}")
    return 0


@app.command("eval")
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory.")],
    data: Annotated[str | None, typer.Option(help="Questions with reference answers: any dataset tuneforge reads (default: the run's eval split).")] = None,
    judge: Annotated[str | None, typer.Option(
        help="A model that grades each answer against its reference: a .gguf file, ollama:NAME, or an OpenAI-compatible URL "
             "(as data prepare's --generator; key from TUNEFORGE_GENERATOR_API_KEY).")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 128,
    everyday: Annotated[bool, typer.Option(
        "--everyday/--no-everyday", help="Also ask every model tuneforge's 116 everyday questions: how many of the "
                                        "base's right answers each keeps (forgetting).")] = True,
) -> int:
    """Ask the base model, the tuned model and each verified GGUF the eval questions, score every answer against
    its reference (exact, contained, F1, stopped; with --judge, correct or not and why), and write RUN_DIR/eval/report.json."""
    from ..api.evaluation import EVAL_FOLDER, TABLE_FILE, evaluate_run

    report = evaluate_run(run_dir, data, judge, max_new_tokens, on_progress=progress_lines(), everyday=everyday)
    say()
    say(report.table())
    say(f"\nevery answer, side by side: {Path(report.run) / EVAL_FOLDER / 'report.json'} (table: {TABLE_FILE})")
    return 0


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option("--run-dir", help="Where to create the demo run.")] = None,
) -> int:
    """Teach the built-in model facts about a town it cannot know, and show its answers before and after."""
    from ..demo import run_demo

    result = run_demo(out, echo=say)
    say("\nFacts from the demo dataset:")
    for answer in result.facts:
        say(f"Q: {answer.question}")
        say(f"   base model:     {_shorten(answer.before)}")
        say(f"   fine-tuned GGUF: {_shorten(answer.after)}")
    if result.kept is not None:
        say(f"\nGeneral knowledge it must keep: the fine-tuned GGUF {result.kept.summary()}")
        for lost in result.kept.lost:
            say(f"Q: {lost.question}")
            say(f"   base model:     {_shorten(lost.before)}")
            say(f"   fine-tuned GGUF: {_shorten(lost.after)}")
    learned = sum(a.known_after for a in result.facts)
    known = sum(a.known_before for a in result.facts)
    kept = f"; everyday answers kept: {result.kept.kept}/{result.kept.known}" if result.kept else ""
    say(f"\nfacts answered correctly: {known}/{len(result.facts)} before fine-tuning, {learned}/{len(result.facts)} after{kept}")
    say(f"\n{result.table}")
    say(f"run directory: {result.run_dir} (every answer: eval/report.json; `tuneforge eval` asks the run's own eval split)")
    return 0


def _shorten(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
