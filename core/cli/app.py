"""The `tuneforge` command line: the typer app, the options commands share, and `main`, which turns
foreseeable failures into `error: …` / `hint: …` and an exit code instead of a traceback.

The commands live beside this module, grouped by the job they do: `inspect.py` (models, data
check, plan, doctor, runs, compare), `training.py` (train, merge, run) and `results.py`
(export, chat, demo). Each is one public API call (core/api/) and its printing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..atomic import is_disk_full
from ..errors import ConfigError, ResourceError, TuneforgeError, print_error
from ..methods import METHODS
from ..progress import Progress, ProgressCallback
from ..quiet import quiet_libraries

if TYPE_CHECKING:
    from ..api.export import ExportResult
    from ..config import RunConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    invoke_without_command=True,
    help="Fine-tune open chat models on your own machine and chat with the result offline.",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ModelOption = Annotated[str | None, typer.Option(help="Catalog name, hub id, local folder, .gguf file, or 'default'.")]
DataOption = Annotated[str | None, typer.Option(help="Training data: a file, a folder, or a hub dataset id (owner/name[:config]).")]
EvalDataOption = Annotated[str | None, typer.Option(help="Held-out data (default: a split of --data).")]
DataSplitOption = Annotated[str | None, typer.Option(help="The split of a hub or saved dataset that trains (default: train).")]
EvalDataSplitOption = Annotated[str | None, typer.Option(help="The split of a hub --eval-data (default: validation, else test).")]
MethodOption = Annotated[str | None, typer.Option(help=f"One of {', '.join(METHODS)} (listed above).")]
FourBitOption = Annotated[bool | None, typer.Option(
    "--load-in-4bit", help="Train a LoRA method (dpo, orpo, simpo, kto, grpo, reward, distill, dora) on a 4-bit nf4 base, as qlora does.")]
TeacherOption = Annotated[str | None, typer.Option(help="distill: the teacher (a model reference or a trained run directory).")]
AdapterFromOption = Annotated[str | None, typer.Option("--adapter-from", help="Continue training this run's (or folder's) adapter.")]
EpochsOption = Annotated[float | None, typer.Option(help="Passes over the data.")]
LrOption = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
MaxLengthOption = Annotated[int | None, typer.Option(help="Longest example in tokens.")]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="A YAML run config; options override it.")]
ChatTemplateOption = Annotated[str | None, typer.Option(
    "--chat-template", help="auto (the model's own, else its family's), chatml, gemma, gemma4, llama3, phi3 or mistral.")]
ReplayOption = Annotated[float | None, typer.Option(
    help="Tokens of the base model's own answers replayed per token of data, so it keeps what it knew "
         "(default: 1 for under 1,000 examples of answers; 0 = off).")]
RewardOption = Annotated[list[str] | None, typer.Option(
    "--reward", help="grpo: what sampled answers are rewarded for, [WEIGHT*]KIND[:ARGUMENT] (repeatable): exact, contains, "
                     "numeric[:TOLERANCE], regex:PATTERN, json[:SCHEMA], length:MIN-MAX, ends_turn, code:FILE[:FUNCTION], "
                     "judge:GENERATOR (default: contains and ends_turn).")]
AllowCodeOption = Annotated[bool | None, typer.Option(
    "--allow-code", help="grpo: run the Python file a code: reward names (it is code: only a file you trust).")]
GenerationsOption = Annotated[int | None, typer.Option(help="grpo: answers sampled per prompt (default 4).")]
CompletionOption = Annotated[int | None, typer.Option(help="grpo: the most tokens a sampled answer may have (default 96).")]
ReportToOption = Annotated[str | None, typer.Option(
    help="Experiment trackers to log to, comma-separated: tensorboard, trackio, wandb, mlflow (TensorBoard and trackio "
         "write into the run folder; `pip install 'tuneforge[tracking]'`).")]
ColumnOption = Annotated[list[str] | None, typer.Option("--column", help="Map a field: tuneforge_name=your_name (repeatable), e.g. prompt=question.")]


def trackers_option(report_to: str | None) -> list[str] | None:
    """--report-to's comma-separated names as a list (None when not given: the config's own stands)."""
    return [name.strip() for name in report_to.split(",") if name.strip()] if report_to else None


def say(text: str = "") -> None:
    """Print a line of output, flushed (a parent process may be tailing it)."""
    print(text, flush=True)


def progress_lines(every_item_of: str | None = None) -> ProgressCallback:
    """A progress callback that prints its line at most once a second, and the last one; every item of
    the stage `every_item_of` (one that takes seconds an item) is printed."""
    last_said = [0.0]

    def show(progress: Progress) -> None:
        now = time.monotonic()
        if progress.stage == every_item_of or progress.done == progress.total or now - last_said[0] >= 1:
            last_said[0] = now
            say(progress.line())

    return show


def columns_option(pairs: list[str] | None) -> dict[str, str]:
    """`--column prompt=question …` as a mapping of tuneforge's field names to the file's."""
    mapping = {}
    for pair in pairs or []:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours or not theirs:
            raise ConfigError(f"--column {pair!r}: expected tuneforge_name=your_name", "for example --column prompt=question")
        mapping[ours.strip()] = theirs.strip()
    return mapping


def config_from_options(config_file: Path | None, **options: object) -> RunConfig:
    """A RunConfig from an optional YAML file overridden by the options the user gave."""
    from ..config import RunConfig, absolute_paths, read_yaml_settings

    # Paths in the YAML file are relative to its folder; paths typed as options, to the working folder.
    values: dict[str, object] = absolute_paths(read_yaml_settings(config_file), config_file.parent) if config_file is not None else {}
    values.update(absolute_paths({key: value for key, value in options.items() if value not in (None, {})}, Path.cwd()))
    if "data" not in values:
        raise ConfigError("no training data given", "pass --data FILE (or a --config YAML that sets data)")
    return RunConfig.from_dict(values)


def print_export(result: ExportResult) -> bool:
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
        say("Ollama: no Modelfile written (tuneforge writes them for ChatML, Llama 3 and Gemma chat formats)")
    if not result.passed:
        failed = [Path(v.file).name for v in result.verifications if not v.passed]
        print(f"error: verification failed for {', '.join(failed)}", file=sys.stderr, flush=True)
        print(f"hint: see {result.report}; a failed file should not be used", file=sys.stderr, flush=True)
    return result.passed


def _print_version(asked: bool) -> None:
    """`tuneforge --version`: the version, then nothing else runs."""
    if asked:
        from .. import __version__

        say(f"tuneforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(ctx: typer.Context,
          version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print tuneforge's version and exit.")] = False) -> None:
    """With no command: open the app in a terminal, or print this help when output is not a terminal."""
    if ctx.invoked_subcommand is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            from tuneforge.tui.app import main as open_app

            open_app()
        else:
            say(ctx.get_help())


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


