"""The commands that train: train (new run, prepared run, resume), merge, and run (the whole pipeline)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..accelerate_setup import DEFAULT_PORT
from ..api.evaluation import forgetting_line
from ..errors import ConfigError, ExportError
from ..methods import method_help
from .app import (
    AdapterFromOption,
    AllowCodeOption,
    ChatTemplateOption,
    ColumnOption,
    CompletionOption,
    ConfigOption,
    DataOption,
    DataSplitOption,
    EpochsOption,
    EvalDataOption,
    EvalDataSplitOption,
    FourBitOption,
    GenerationsOption,
    LrOption,
    MaxLengthOption,
    MethodOption,
    ModelOption,
    ReplayOption,
    ReportToOption,
    RewardOption,
    TeacherOption,
    app,
    columns_option,
    config_from_options,
    print_export,
    say,
    trackers_option,
)

if TYPE_CHECKING:
    from ..events import TrainResult


TRAIN_HELP = textwrap.dedent("""
    Train a run. Three forms:

    \b
      tuneforge train --model M --data FILE \\[options]   start a new run
      tuneforge train RUN_DIR                           run a prepared run directory (its config.yaml)
      tuneforge train --resume RUN_DIR                  continue from the last complete checkpoint

    Methods (--method; other settings of each go in a --config YAML, see RUN_DIR/config.yaml):
""") + "\n\b\n" + textwrap.indent(method_help(), "  ") + "\n"


@app.command(help=TRAIN_HELP, short_help="Train a run: a new one, a prepared run directory, or the rest of a stopped one.")
def train(
    run_dir: Annotated[Path | None, typer.Argument(help="A prepared run directory.")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue this run from its last complete checkpoint.")] = None,
    accept_changes: Annotated[bool, typer.Option("--accept-changes", help="Resume even though the run's settings, data, base model or libraries changed since it started.")] = False,
    model: ModelOption = None,
    data: DataOption = None,
    data_split: DataSplitOption = None,
    eval_data: EvalDataOption = None,
    eval_data_split: EvalDataSplitOption = None,
    method: MethodOption = None,
    load_in_4bit: FourBitOption = None,
    epochs: EpochsOption = None,
    lr: LrOption = None,
    max_length: MaxLengthOption = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per step.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps.")] = None,
    out: Annotated[Path | None, typer.Option("--run-dir", help="Where to create the run (default: TUNEFORGE_HOME/runs/…).")] = None,
    config: ConfigOption = None,
    column: ColumnOption = None,
    chat_template: ChatTemplateOption = None,
    replay: ReplayOption = None,
    reward: RewardOption = None,
    allow_code: AllowCodeOption = None,
    num_generations: GenerationsOption = None,
    max_completion_length: CompletionOption = None,
    report_to: ReportToOption = None,
    teacher: TeacherOption = None,
    adapter_from: AdapterFromOption = None,
    gpus: Annotated[int | None, typer.Option(help="Train on N GPUs of this machine (data parallel through accelerate).")] = None,
    processes: Annotated[int | None, typer.Option(help="Train in N processes (CPU processes on a machine without GPUs, over gloo).")] = None,
    nodes: Annotated[int | None, typer.Option(help="Machines training together; run the same command on each.")] = None,
    node_rank: Annotated[int, typer.Option(help="This machine's number among --nodes, from 0 (the main machine).")] = 0,
    main_address: Annotated[str | None, typer.Option(help="Address of the machine with --node-rank 0.")] = None,
    main_port: Annotated[int | None, typer.Option(help=f"Port the main machine listens on (default: {DEFAULT_PORT} across machines, a free one on one machine).")] = None,
) -> int:
    from ..accelerate_setup import Machine
    from ..api import runs as runs_api

    if gpus is not None and processes is not None:
        raise ConfigError("give --gpus or --processes, not both", "--gpus N on a GPU machine, --processes N on a CPU-only one")
    if gpus is not None:
        _require_gpus(gpus)
    machine = Machine(node_rank, main_address, main_port)
    new_run_options = (model, data, data_split, eval_data, eval_data_split, method, load_in_4bit, epochs, lr, max_length, batch_size, max_steps, out, config, column,
                       teacher, adapter_from, gpus, processes, nodes, replay, report_to, reward, allow_code, num_generations,
                       max_completion_length)
    if (resume is not None or run_dir is not None) and any(option is not None for option in new_run_options):
        raise ConfigError("options like --model and --data start a new run; a run directory already has its config.yaml",
                          "edit RUN_DIR/config.yaml, or start a new run without RUN_DIR")
    if resume is not None and run_dir is not None:
        raise ConfigError("give either RUN_DIR or --resume RUN_DIR, not both", "to continue a stopped run: tuneforge train --resume RUN_DIR")
    if accept_changes and resume is None:
        raise ConfigError("--accept-changes only applies to --resume RUN_DIR", "tuneforge train --resume RUN_DIR --accept-changes")
    if resume is not None:
        result = runs_api.train(resume, resume=True, echo=say, accept_changes=accept_changes, machine=machine)
        run_path = resume
    elif run_dir is not None:
        result = runs_api.train(run_dir, echo=say, machine=machine)
        run_path = run_dir
    else:
        run_config = config_from_options(
            config, model=model, data=data, data_split=data_split, eval_data=eval_data, eval_data_split=eval_data_split, method=method, load_in_4bit=load_in_4bit, epochs=epochs, learning_rate=lr,
            max_length=max_length, batch_size=batch_size, max_steps=max_steps, columns=columns_option(column),
            teacher=teacher, adapter_from=adapter_from, processes=gpus or processes, nodes=nodes, chat_template=chat_template,
            replay=replay, report_to=trackers_option(report_to), rewards=reward, allow_code=allow_code,
            num_generations=num_generations, max_completion_length=max_completion_length,
        )
        run = runs_api.create_run(run_config, out, echo=say)
        say(f"run directory: {run.path}")
        result = runs_api.train(run.path, echo=say, machine=machine)
        run_path = run.path
    _print_result(result)
    say(f"next: tuneforge merge {run_path}")
    return 0


def _require_gpus(count: int) -> None:
    """--gpus N needs N CUDA GPUs here."""
    from ..hardware import detect

    available = detect().gpu_count
    if count > available:
        raise ConfigError(f"--gpus {count}: this machine has {available} CUDA GPU{'s' if available != 1 else ''}",
                          "on a machine without GPUs, --processes N trains in N CPU processes")


def _print_result(result: TrainResult) -> None:
    eval_text = f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else ""
    say(f"trained {result.steps} steps in {result.runtime_s:.0f} s: final loss {result.final_loss:.4f}{eval_text}, "
        f"{result.tokens_per_second:.0f} tokens/s, peak memory {result.peak_memory_gb:.2f} GB{_against_plan(result)}")
    forgetting = forgetting_line(result)
    if forgetting:
        say(forgetting)


def _against_plan(result: TrainResult) -> str:
    """The measured peak next to the plan's, e.g. " (planned 2.61 GB, -3%)"."""
    if not result.planned_peak_gb:
        return ""
    return f" (planned {result.planned_peak_gb:.2f} GB, {result.peak_memory_gb / result.planned_peak_gb - 1:+.0%})"


@app.command()
def merge(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory.")],
    dtype: Annotated[str | None, typer.Option(help="bfloat16 | float16 | float32 (default: the base's 16-bit dtype).")] = None,
) -> int:
    """Merge the run's adapter into a 16-bit copy of its base model (RUN_DIR/merged)."""
    from ..api import runs as runs_api

    if dtype is not None and dtype not in ("bfloat16", "float16", "float32"):
        raise ConfigError(f"--dtype {dtype}: not a dtype tuneforge writes", "use bfloat16, float16 or float32")
    say(f"merged model: {runs_api.merge(run_dir, dtype)}")
    return 0


@app.command()
def run(
    model: ModelOption = None,
    data: DataOption = None,
    data_split: DataSplitOption = None,
    eval_data: EvalDataOption = None,
    eval_data_split: EvalDataSplitOption = None,
    method: MethodOption = None,
    load_in_4bit: FourBitOption = None,
    epochs: EpochsOption = None,
    lr: LrOption = None,
    max_length: MaxLengthOption = None,
    out: Annotated[Path | None, typer.Option("--run-dir", help="Where to create the run.")] = None,
    config: ConfigOption = None,
    prompt: Annotated[str | None, typer.Option(help="Ask the fine-tuned GGUF this at the end.")] = None,
    quant: Annotated[str, typer.Option(help="GGUF types to export and verify, comma-separated.")] = "q8_0",
    column: ColumnOption = None,
    chat_template: ChatTemplateOption = None,
    replay: ReplayOption = None,
    reward: RewardOption = None,
    allow_code: AllowCodeOption = None,
    num_generations: GenerationsOption = None,
    max_completion_length: CompletionOption = None,
    report_to: ReportToOption = None,
    teacher: TeacherOption = None,
    adapter_from: AdapterFromOption = None,
) -> int:
    """Train → merge → export to GGUF → verify, then answer --prompt with the verified GGUF."""
    from tuneforge.exporters.gguf.types import parse_gguf_types

    from ..api import runs as runs_api
    from ..api.chat import load_chat_model

    quants = parse_gguf_types(quant)  # before hours of training, not after
    run_config = config_from_options(
        config, model=model, data=data, data_split=data_split, eval_data=eval_data, eval_data_split=eval_data_split, method=method, load_in_4bit=load_in_4bit, epochs=epochs, learning_rate=lr,
        max_length=max_length, columns=columns_option(column), teacher=teacher, adapter_from=adapter_from,
        chat_template=chat_template, replay=replay, report_to=trackers_option(report_to), rewards=reward, allow_code=allow_code,
        num_generations=num_generations, max_completion_length=max_completion_length,
    )
    run_dir, exported = runs_api.run_pipeline(run_config, out, echo=say, quants=quants)
    assert exported is not None
    if not print_export(exported):
        return ExportError.exit_code
    if prompt:
        chat_model = load_chat_model(run_dir.path)
        say(f"\n> {prompt}\n{chat_model.answer(prompt)}")
        chat_model.close()
    return 0
