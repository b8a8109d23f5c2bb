"""`tuneforge …`: the command line, one subcommand per public API call (see docs/architecture.md).

Foreseeable failures print `error: …` and `hint: …` and exit non-zero; no traceback.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tuneforge.exporters.gguf.types import DEFAULT_TYPES, GGUF_TYPES

from .atomic import is_disk_full
from .accelerate_setup import DEFAULT_PORT
from .errors import ConfigError, ExportError, ResourceError, TuneforgeError, print_error
from .methods import METHODS, method_help
from .quiet import quiet_libraries

if TYPE_CHECKING:  # these pull in heavy libraries; the CLI must start fast
    from tuneforge.exporters.export import ExportResult

    from .config import RunConfig
    from .train.result import TrainResult

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    invoke_without_command=True,
    help="Fine-tune open chat models on your own machine and chat with the result offline.",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ModelOption = Annotated[Optional[str], typer.Option(help="Catalog name, hub id, local folder, .gguf file, or 'default'.")]
DataOption = Annotated[Optional[str], typer.Option(help="Training data file or folder.")]
EvalDataOption = Annotated[Optional[str], typer.Option(help="Held-out data (default: a split of --data).")]
MethodOption = Annotated[Optional[str], typer.Option(help=f"One of {', '.join(METHODS)} (listed above).")]
TeacherOption = Annotated[Optional[str], typer.Option(help="distill: the teacher (a model reference or a trained run directory).")]
AdapterFromOption = Annotated[Optional[str], typer.Option("--adapter-from", help="Continue training this run's (or folder's) adapter.")]
EpochsOption = Annotated[Optional[float], typer.Option(help="Passes over the data.")]
LrOption = Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate.")]
MaxLengthOption = Annotated[Optional[int], typer.Option(help="Longest example in tokens.")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="A YAML run config; options override it.")]
ColumnOption = Annotated[Optional[list[str]], typer.Option("--column", help="Map a field: tuneforge_name=your_name (repeatable), e.g. prompt=question.")]


def say(text: str = "") -> None:
    """Print a line of output, flushed (a parent process may be tailing it)."""
    print(text, flush=True)


def _columns(pairs: list[str] | None) -> dict[str, str]:
    mapping = {}
    for pair in pairs or []:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours or not theirs:
            raise ConfigError(f"--column {pair!r}: expected tuneforge_name=your_name", "for example --column prompt=question")
        mapping[ours.strip()] = theirs.strip()
    return mapping


@app.callback()
def _root(ctx: typer.Context) -> None:
    """With no command: open the app in a terminal, or print this help when output is not a terminal."""
    if ctx.invoked_subcommand is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            from tuneforge.tui.app import main as open_app

            open_app()
        else:
            say(ctx.get_help())


@app.command()
def models(fits: Annotated[bool, typer.Option("--fits", help="Only models that fit this machine.")] = False) -> None:
    """List the model catalog (parameters, context, licence) with whether it fits this machine (the memory planner's verdict)."""
    from .catalog import all_models
    from .fit import model_fit
    from .hardware import detect

    hardware = detect()
    say(f"device: {hardware.device_label}")
    say(f"{'name':<14} {'size':>6} {'context':>8} {'arch':<12} {'licence':<14} {'fit':<6} hub id")
    for spec in all_models():
        fit = model_fit(spec, hardware)
        if fits and fit == "no":
            continue
        gated = " (gated)" if spec.gated else ""
        say(f"{spec.name:<14} {spec.size_label:>6} {spec.context:>8} {spec.arch:<12} {spec.license:<14} {fit:<6} {spec.hub_id}{gated}")
    say("\nalso: `--model default` (built-in SmolLM2-135M-Instruct), a hub id, a local folder, or a .gguf file")


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(help="A .jsonl/.csv file or a folder of .txt/.md documents.")],
    model: Annotated[str, typer.Option(help="Model whose tokenizer and chat template measure the data.")] = "default",
    max_length: Annotated[int, typer.Option(help="Longest example in tokens.")] = 512,
    eval_split: Annotated[float, typer.Option(help="Fraction held out for eval.")] = 0.1,
    column: ColumnOption = None,
) -> int:
    """Validate a dataset and report its shape, split and token lengths; exit 1 listing FILE:LINE problems."""
    from .pipeline import check_data

    report = check_data(file, model, max_length, eval_split, _columns(column))
    say(f"file       {report.path}")
    say(f"shape      {report.shape}")
    if report.problems:
        say(f"problems   {len(report.problems)}")
        for problem in report.problems:
            say(f"  {problem}")
        return 1
    stats = report.stats
    assert stats is not None
    lengths = stats.length_summary()
    say(f"records    {stats.records}")
    say(f"split      {stats.train_examples} train / {stats.eval_examples} eval")
    say(f"tokens     min {lengths['min']} · median {lengths['median']} · p95 {lengths['p95']} · max {lengths['max']}")
    say(f"truncated  {stats.truncated} of {len(stats.token_lengths)} at max_length {stats.max_length}"
        + (f" ({stats.dropped} left with nothing to train, skipped)" if stats.dropped else ""))
    share = stats.answer_share
    say(f"trained    {stats.trained_tokens} of {stats.total_tokens} train tokens ({share:.0%}); "
        f"end-of-turn token trained: {'yes' if stats.end_of_turn_trained else 'NO'}")
    histogram = stats.histogram()
    top = max((count for _, _, count in histogram), default=1)
    for low, high, count in histogram:
        say(f"  {low:>6}-{high:<6} {'█' * round(30 * count / top):<30} {count}")
    return 0


def _config_from_options(config_file: Path | None, **options: object) -> RunConfig:
    """A RunConfig from an optional YAML file overridden by the options the user gave."""
    from .config import RunConfig, absolute_paths, read_yaml_settings

    # Paths in the YAML file are relative to its folder; paths typed as options, to the working folder.
    values: dict[str, object] = absolute_paths(read_yaml_settings(config_file), config_file.parent) if config_file is not None else {}
    values.update(absolute_paths({key: value for key, value in options.items() if value not in (None, {})}, Path.cwd()))
    if "data" not in values:
        raise ConfigError("no training data given", "pass --data FILE (or a --config YAML that sets data)")
    return RunConfig.from_dict(values)


@app.command()
def plan(
    model: ModelOption = None,
    data: DataOption = None,
    method: MethodOption = None,
    max_length: MaxLengthOption = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Examples per step.")] = None,
    config: ConfigOption = None,
    column: ColumnOption = None,
) -> int:
    """Show the memory a run will need here, term by term, what auto-fit will choose, and what merge and export need."""
    from .pipeline import plan_run

    with_data = data is not None or config is not None
    run_config = _config_from_options(config, model=model, data=data or "-", method=method, max_length=max_length,
                                      batch_size=batch_size, columns=_columns(column))
    report = plan_run(run_config, with_data=with_data)
    fit, estimate = report.fit, report.fit.plan
    say(f"device: {report.hardware.device_label}")
    say(f"{report.model} ({report.params_b:.3g} B parameters), {report.method}: batch {fit.batch_size} × grad_accum "
        f"{fit.grad_accum}, longest batch {fit.max_length} tokens, gradient checkpointing "
        f"{'on' if fit.gradient_checkpointing else 'off'}" + ("" if with_data else " (no --data: every example max_length long)"))
    for name, gb in estimate.parts:
        say(f"  {name:<20} {gb:7.2f} GB")
    if estimate.reserve_gb:
        say(f"  {'CUDA context':<20} {estimate.reserve_gb:7.2f} GB")
    say(f"  {'total':<20} {estimate.total_gb:7.2f} GB of {estimate.budget_gb:.1f} GB free: {estimate.verdict}")
    for change in fit.changes:
        say(f"auto-fit: {change}")
    hardware = report.hardware
    say(f"after training ({hardware.ram_available_gb:.1f} GB RAM free, {hardware.disk_free_gb:.0f} GB disk free):")
    for phase in (report.merge, report.export):
        room = not phase.shortfalls(hardware.ram_available_gb, hardware.disk_free_gb)
        say(f"  {phase.phase:<7} RAM {phase.ram_gb:6.2f} GB, disk {phase.disk_gb:6.2f} GB: {'fits' if room else 'TOO BIG'}"
            f"  ({phase.detail})")
    return 0 if estimate.verdict != "too big" else 1


@app.command()
def doctor(
    model: ModelOption = None,
    data: DataOption = None,
    method: MethodOption = None,
    config: ConfigOption = None,
) -> int:
    """Check this machine: Python, torch and CUDA, the GPU driver, bitsandbytes, llama.cpp, the default model,
    and memory and disk for a planned run (--model/--data/--config, else a default run); exit 1 on any failure."""
    from .doctor import run_checks

    planned = None
    if any(option is not None for option in (model, data, method, config)):
        planned = _config_from_options(config, model=model, data=data or "-", method=method)
    checks = run_checks(planned)
    for check in checks:
        say(f"{ {'ok': 'ok', 'warn': 'WARN', 'fail': 'FAIL'}[check.status]:<5} {check.name:<17} {check.detail}")
        if check.status != "ok" and check.fix:
            say(f"{'':<23} fix: {check.fix}")
    counts = {status: sum(c.status == status for c in checks) for status in ("ok", "warn", "fail")}
    say(f"\n{len(checks)} checks: {counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failed")
    return 1 if counts["fail"] else 0


TRAIN_HELP = textwrap.dedent("""
    Train a run. Three forms:

      tuneforge train --model M --data FILE [options]   start a new run
      tuneforge train RUN_DIR                           run a prepared run directory (its config.yaml)
      tuneforge train --resume RUN_DIR                  continue from the last complete checkpoint

    Methods (--method; other settings of each go in a --config YAML, see RUN_DIR/config.yaml):
""") + "\n\b\n" + textwrap.indent(method_help(), "  ") + "\n"


@app.command(help=TRAIN_HELP)
def train(
    run_dir: Annotated[Optional[Path], typer.Argument(help="A prepared run directory.")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue this run from its last complete checkpoint.")] = None,
    accept_changes: Annotated[bool, typer.Option("--accept-changes", help="Resume even though the run's settings, data, base model or libraries changed since it started.")] = False,
    model: ModelOption = None,
    data: DataOption = None,
    eval_data: EvalDataOption = None,
    method: MethodOption = None,
    epochs: EpochsOption = None,
    lr: LrOption = None,
    max_length: MaxLengthOption = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Examples per step.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimizer steps.")] = None,
    out: Annotated[Optional[Path], typer.Option("--run-dir", help="Where to create the run (default: TUNEFORGE_HOME/runs/…).")] = None,
    config: ConfigOption = None,
    column: ColumnOption = None,
    teacher: TeacherOption = None,
    adapter_from: AdapterFromOption = None,
    gpus: Annotated[Optional[int], typer.Option(help="Train on N GPUs of this machine (data parallel through accelerate).")] = None,
    processes: Annotated[Optional[int], typer.Option(help="Train in N processes (CPU processes on a machine without GPUs, over gloo).")] = None,
    nodes: Annotated[Optional[int], typer.Option(help="Machines training together; run the same command on each.")] = None,
    node_rank: Annotated[int, typer.Option(help="This machine's number among --nodes, from 0 (the main machine).")] = 0,
    main_address: Annotated[Optional[str], typer.Option(help="Address of the machine with --node-rank 0.")] = None,
    main_port: Annotated[Optional[int], typer.Option(help=f"Port the main machine listens on (default: {DEFAULT_PORT} across machines, a free one on one machine).")] = None,
) -> int:
    from . import pipeline
    from .accelerate_setup import Machine

    if gpus is not None and processes is not None:
        raise ConfigError("give --gpus or --processes, not both", "--gpus N on a GPU machine, --processes N on a CPU-only one")
    if gpus is not None:
        _require_gpus(gpus)
    machine = Machine(node_rank, main_address, main_port)
    new_run_options = (model, data, eval_data, method, epochs, lr, max_length, batch_size, max_steps, out, config, column,
                       teacher, adapter_from, gpus, processes, nodes)
    if (resume is not None or run_dir is not None) and any(option is not None for option in new_run_options):
        raise ConfigError("options like --model and --data start a new run; a run directory already has its config.yaml",
                          "edit RUN_DIR/config.yaml, or start a new run without RUN_DIR")
    if resume is not None and run_dir is not None:
        raise ConfigError("give either RUN_DIR or --resume RUN_DIR, not both", "to continue a stopped run: tuneforge train --resume RUN_DIR")
    if accept_changes and resume is None:
        raise ConfigError("--accept-changes only applies to --resume RUN_DIR", "tuneforge train --resume RUN_DIR --accept-changes")
    if resume is not None:
        result = pipeline.train(resume, resume=True, echo=say, accept_changes=accept_changes, machine=machine)
        run_path = resume
    elif run_dir is not None:
        result = pipeline.train(run_dir, echo=say, machine=machine)
        run_path = run_dir
    else:
        run_config = _config_from_options(
            config, model=model, data=data, eval_data=eval_data, method=method, epochs=epochs, learning_rate=lr,
            max_length=max_length, batch_size=batch_size, max_steps=max_steps, columns=_columns(column),
            teacher=teacher, adapter_from=adapter_from, processes=gpus or processes, nodes=nodes,
        )
        run = pipeline.create_run(run_config, out)
        say(f"run directory: {run.path}")
        result = pipeline.train(run.path, echo=say, machine=machine)
        run_path = run.path
    _print_result(result)
    say(f"next: tuneforge merge {run_path}")
    return 0


def _require_gpus(count: int) -> None:
    """--gpus N needs N CUDA GPUs here."""
    from .hardware import detect

    available = detect().gpu_count
    if count > available:
        raise ConfigError(f"--gpus {count}: this machine has {available} CUDA GPU{'s' if available != 1 else ''}",
                          "on a machine without GPUs, --processes N trains in N CPU processes")


def _print_result(result: TrainResult) -> None:
    eval_text = f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else ""
    say(f"trained {result.steps} steps in {result.runtime_s:.0f} s: final loss {result.final_loss:.4f}{eval_text}, "
        f"{result.tokens_per_second:.0f} tokens/s, peak memory {result.peak_memory_gb:.2f} GB{_against_plan(result)}")


def _against_plan(result: TrainResult) -> str:
    """The measured peak next to the plan's, e.g. " (planned 2.61 GB, -3%)"."""
    if not result.planned_peak_gb:
        return ""
    return f" (planned {result.planned_peak_gb:.2f} GB, {result.peak_memory_gb / result.planned_peak_gb - 1:+.0%})"


@app.command()
def merge(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory.")],
    dtype: Annotated[Optional[str], typer.Option(help="bfloat16 | float16 | float32 (default: the base's 16-bit dtype).")] = None,
) -> int:
    """Merge the run's adapter into a 16-bit copy of its base model (RUN_DIR/merged)."""
    from . import pipeline

    if dtype is not None and dtype not in ("bfloat16", "float16", "float32"):
        raise ConfigError(f"--dtype {dtype}: not a dtype tuneforge writes", "use bfloat16, float16 or float32")
    say(f"merged model: {pipeline.merge(run_dir, dtype)}")
    return 0


@app.command()
def run(
    model: ModelOption = None,
    data: DataOption = None,
    eval_data: EvalDataOption = None,
    method: MethodOption = None,
    epochs: EpochsOption = None,
    lr: LrOption = None,
    max_length: MaxLengthOption = None,
    out: Annotated[Optional[Path], typer.Option("--run-dir", help="Where to create the run.")] = None,
    config: ConfigOption = None,
    prompt: Annotated[Optional[str], typer.Option(help="Ask the fine-tuned GGUF this at the end.")] = None,
    quant: Annotated[str, typer.Option(help="GGUF types to export and verify, comma-separated.")] = "q8_0",
    column: ColumnOption = None,
    teacher: TeacherOption = None,
    adapter_from: AdapterFromOption = None,
) -> int:
    """Train → merge → export to GGUF → verify, then answer --prompt with the verified GGUF."""
    from tuneforge.exporters.gguf.types import parse_gguf_types

    from . import pipeline
    from .chat import load_chat_model

    quants = parse_gguf_types(quant)  # before hours of training, not after
    run_config = _config_from_options(
        config, model=model, data=data, eval_data=eval_data, method=method, epochs=epochs, learning_rate=lr,
        max_length=max_length, columns=_columns(column), teacher=teacher, adapter_from=adapter_from,
    )
    run_dir, exported = pipeline.run_pipeline(run_config, out, echo=say, quants=quants)
    assert exported is not None
    if not _print_export(exported):
        return ExportError.exit_code
    if prompt:
        chat_model = load_chat_model(run_dir.path)
        say(f"\n> {prompt}\n{chat_model.answer(prompt)}")
        chat_model.close()
    return 0


@app.command()
def export(
    source: Annotated[Path, typer.Argument(help="A trained run directory, or a HF model folder.")],
    quant: Annotated[str, typer.Option(help=f"GGUF types, comma-separated: {', '.join(GGUF_TYPES)}.")] = ",".join(DEFAULT_TYPES),
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: RUN_DIR/export, or MODEL_DIR-gguf beside a model folder).")] = None,
    adapter_only: Annotated[bool, typer.Option("--adapter-only", help="Write the LoRA adapter as a GGUF adapter (plus an f16 base) instead of merged weights.")] = False,
) -> int:
    """Convert to GGUF, quantize, verify every file against the model, and write an Ollama Modelfile."""
    from tuneforge.exporters.export import export_adapter
    from tuneforge.exporters.gguf.types import parse_gguf_types

    from . import pipeline

    if adapter_only:
        result = export_adapter(source, out, echo=say)
    else:
        result = pipeline.export(source, parse_gguf_types(quant), out, echo=say)
    return 0 if _print_export(result) else ExportError.exit_code


def _print_export(result: "ExportResult") -> bool:
    """Print each file's checks; on failure print an error line and return False."""
    for verification in result.verifications:
        status = "verified" if verification.passed else "FAILED"
        say(f"\n{Path(verification.file).name}  {verification.size_bytes / 2**20:.0f} MiB  {status}")
        for check in verification.checks:
            say(f"  {'ok ' if check.passed else 'BAD'} {check.name:<10} {check.detail}")
            if check.hint and not check.passed:
                say(f"  {'':<14} hint: {check.hint}")
    say(f"\nreport: {result.report}")
    if result.modelfile:
        say(f"Ollama: {result.ollama_command}")
    elif result.passed:
        say("Ollama: no Modelfile written (tuneforge writes them for ChatML and Llama 3 chat formats)")
    if not result.passed:
        failed = [Path(v.file).name for v in result.verifications if not v.passed]
        print(f"error: verification failed for {', '.join(failed)}", file=sys.stderr, flush=True)
        print(f"hint: see {result.report}; a failed file should not be used", file=sys.stderr, flush=True)
    return result.passed


@app.command()
def runs() -> None:
    """List runs with their state, latest figures, and the base and method each one trained."""
    from tuneforge.exporters.report import REPORT_FILE

    from .diagnosis import failure_cause
    from .runs import list_runs

    found = list_runs()
    if not found:
        say("no runs yet; start one with `tuneforge train --model default --data FILE`")
        return
    say(f"{'run':<40} {'state':<13} {'step':>9} {'loss':>8} {'eval':>8}  {'method':<8} base")
    for run_dir in found:
        history = run_dir.history()
        last = history.last_step
        step = f"{last.step}/{last.max_steps}" if last else "-"
        loss = f"{last.loss:.4f}" if last else "-"
        eval_loss = f"{history.last_eval_loss:.4f}" if history.last_eval_loss is not None else "-"
        try:
            config = run_dir.load_config()
            method, base = config.method, config.model
            if config.processes * config.nodes > 1:  # e.g. lora×4: four GPUs (or processes)
                method += f"×{config.processes * config.nodes}"
            if config.adapter_from:
                base += f" (continues {Path(config.adapter_from).name})"
        except TuneforgeError:
            method, base = "?", "(unreadable config.yaml)"
        state = run_dir.state(history)
        say(f"{run_dir.name:<40} {state:<13} {step:>9} {loss:>8} {eval_loss:>8}  {method:<8} {base}")
        if state in ("failed", "stopped"):
            message, hint = failure_cause(run_dir, history=history)
            say(f"  {message.splitlines()[0]}")
            if hint:
                say(f"  hint: {hint}")
        elif state == "export failed":
            say(f"  {run_dir.last_export_failure(history)}")
            say(f"  hint: see {run_dir.export / REPORT_FILE}; export again with `tuneforge export {run_dir.path}`")


@app.command()
def compare(runs: Annotated[list[Path], typer.Argument(help="Finished run directories.")]) -> int:
    """Compare finished runs: method, trainable parameters, peak memory, speed, losses, forgetting, accuracy."""
    from .compare import compared_run, format_table

    say(format_table([compared_run(path) for path in runs]))
    return 0


@app.command()
def chat(
    sources: Annotated[list[str], typer.Argument(help="A .gguf file, a run directory (its verified GGUF, else its merged model), or a model; several runs of one base share it.")],
    prompt: Annotated[Optional[str], typer.Option(help="Print one answer to this and exit.")] = None,
) -> int:
    """Chat with a GGUF through llama.cpp (or a run or model through transformers): one answer with --prompt, else interactive.

    Several run directories load their common base once with each run's adapter: --prompt
    prints every adapter's answer; interactively, `/use NAME` switches (`/use base` for none).
    """
    from .chat import interactive_chat, load_adapters_chat, load_chat_model

    model = load_chat_model(sources[0]) if len(sources) == 1 else load_adapters_chat([Path(s) for s in sources])
    if prompt is not None:
        for name in model.adapters or (None,):
            if name is not None:
                model.use(name)
                say(f"[{name}]")
            say(model.answer(prompt))
        model.close()
        return 0
    interactive_chat(model, say)
    model.close()
    return 0


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option("--run-dir", help="Where to create the demo run.")] = None,
) -> int:
    """Teach the built-in model facts about a town it cannot know, and show its answers before and after."""
    from .demo import run_demo

    result = run_demo(out, echo=say)
    for title, answers in (("Facts from the demo dataset", result.facts), ("General knowledge it must keep", result.controls)):
        say(f"\n{title}:")
        for answer in answers:
            say(f"Q: {answer.question}")
            say(f"   base model:     {_shorten(answer.before)}")
            say(f"   fine-tuned GGUF: {_shorten(answer.after)}")
    learned = sum(a.known_after for a in result.facts)
    known = sum(a.known_before for a in result.facts)
    kept = sum(a.known_after for a in result.controls)
    say(f"\nfacts answered correctly: {known}/{len(result.facts)} before fine-tuning, {learned}/{len(result.facts)} after; "
        f"general questions still right: {kept}/{len(result.controls)}")
    say(f"run directory: {result.run_dir}")
    return 0


def _shorten(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, the error's code on a foreseeable failure)."""
    quiet_libraries()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="tuneforge", standalone_mode=False)
    except TuneforgeError as exc:
        print_error(exc)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # typer's own click: a mistyped command, option or value
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()  # click's one line ("No such command 'trian'. Did you mean 'train'?") under the usage line
        return getattr(exc, "exit_code", 2)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        print_error(ResourceError(f"the disk ran out of space ({exc})", "free some disk space and run the command again"))
        return ResourceError.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr, flush=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
