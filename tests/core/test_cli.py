"""The CLI: help everywhere, FILE:LINE problems, one clean error line with a hint, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from tuneforge.core.cli import main
from tuneforge.core.cli.app import app


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run `tuneforge` as a user would, in a fresh process."""
    return subprocess.run([sys.executable, "-m", "tuneforge.core.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("command", [[], ["models"], ["data", "check"], ["train"], ["merge"], ["run"], ["runs"], ["chat"], ["eval"], ["demo"], ["compare"], ["plan"], ["doctor"], ["shrink"]])
def test_help_everywhere(command, capsys):
    assert main([*command, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_help_reads_as_written_and_every_summary_ends_its_sentence(capsys):
    """Help is Rich markup to typer: a bracketed word ("[options]") vanished unless escaped."""
    assert main(["train", "--help"]) == 0
    assert "--data FILE [options]" in capsys.readouterr().out
    assert main(["--help"]) == 0
    commands = typer.main.get_command(app).commands
    listed = capsys.readouterr().out
    for name, command in commands.items():
        summary = command.get_short_help_str(limit=10_000)
        assert summary.endswith((".", ")")), (name, summary)
        assert summary.split()[0] in listed, name


def test_version(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tuneforge {version('tuneforge')}"


def test_models_lists_the_catalog(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-1.5b" in out and "llama-3.1-8b" in out and "(gated)" in out


def test_plan_shows_the_breakdown_the_fit_and_what_merge_and_export_need(home, capsys):
    from tuneforge.core.demo import demo_file

    assert main(["plan", "--data", str(demo_file("brindlewick.jsonl"))]) == 0
    out = capsys.readouterr().out
    assert "default (0.135 B parameters), lora: batch 8 × grad_accum 1" in out
    for term in ("base weights", "LoRA + optimizer", "activations", "logits", "total", "merge", "export"):
        assert term in out, term
    # A model no machine here can train refuses with exit 1; the plan says why.
    assert main(["plan", "--model", "llama-3.1-8b", "--method", "full"]) == 1
    assert "too big" in capsys.readouterr().out


@pytest.mark.process
def test_data_check_lists_problems_with_file_and_line(home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n{oops\n" + json.dumps({"prompt": "c"}) + "\n")
    result = run_cli("data", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: not valid JSON" in result.stdout
    assert f"{bad}:3: missing field(s) completion" in result.stdout
    assert "Traceback" not in result.stderr


def test_data_check_reports_stats(home, default_model, capsys):
    from tuneforge.core.demo import DEMO_DATA, demo_file

    assert main(["data", "check", str(demo_file(DEMO_DATA))]) == 0
    out = capsys.readouterr().out
    # 36 answers: a set of facts to learn, split as a default run splits it (nothing held out)
    assert "messages" in out and "36 train / 0 eval" in out and "end-of-turn token trained: yes" in out
    assert main(["data", "check", str(demo_file(DEMO_DATA)), "--eval-split", "0.1"]) == 0
    assert "32 train / 4 eval" in capsys.readouterr().out


def test_data_check_counts_feedback_labels(home, default_model, capsys, tmp_path):
    feedback = tmp_path / "feedback.jsonl"
    rows = [{"prompt": "Hi", "completion": "Hello!", "label": True}, {"prompt": "Hi", "completion": "Go away.", "label": False},
            {"prompt": "Bye", "completion": "See you!", "label": True}]
    feedback.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    assert main(["data", "check", str(feedback)]) == 0
    out = capsys.readouterr().out
    assert "2 good / 1 bad" in out and "kto" in out and "2 train / 0 eval" in out  # a run but kto leaves the bad one out


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["train", "--model", "qwen2.5-0.5b", "--data", "x.jsonl"], 3, "no such file"),
        (["train", "--model", "not-a-model", "--data", "{data}"], 4, "not in the catalog"),
        (["train", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--data", "{data}"], 4, "not in the local cache"),
        (["train", "--data", "{data}", "--epochs", "-2"], 2, "epochs"),
        (["merge", "{tmp}"], 2, "not a run directory"),
        (["train", "--resume", "{tmp}"], 2, "not a run directory"),
        (["shrink", "{model}", "--layers", "2", "--data", "{data}"], 2, "the model has 2 layers: shrinking to 2 removes none"),
        (["shrink", "{model}", "--keep", "0.3", "--data", "{data}"], 2, "too few: the first and last layers always stay"),
        (["shrink", "{model}", "--layers", "1", "--stages", "two", "--data", "{data}"], 2, "--stages two"),
        (["shrink", "--resume", "{tmp}", "--layers", "3"], 2, "takes no other options"),
        (["shrink", "--resume", "{tmp}", "--general-prompts", "0"], 2, "takes no other options"),
        (["shrink", "--resume", "{tmp}"], 2, "not a shrink directory"),
    ],
)
@pytest.mark.process
def test_foreseeable_failures_print_error_and_hint(home, tmp_path, facts_file, tiny_llama, args, code, fragment):
    args = [a.format(data=facts_file, tmp=tmp_path, model=tiny_llama) for a in args]
    result = run_cli(*args)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and fragment in result.stderr
    assert lines[-1].startswith("hint: ")
    assert "Traceback" not in result.stderr
    runs = home / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a failed start left a run directory behind"


def test_runs_lists_nothing_then_a_run(home, facts_file, capsys):
    assert main(["runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.config import RunConfig

    create_run(RunConfig(data=str(facts_file)))
    assert main(["runs"]) == 0
    assert "created" in capsys.readouterr().out


def test_a_config_file_is_completed_by_options(tmp_path, facts_file):
    from tuneforge.core.cli.app import config_from_options

    config_file = tmp_path / "base.yaml"
    config_file.write_text("epochs: 2\nlora_r: 4\n")
    config = config_from_options(config_file, data=str(facts_file), epochs=3.0, model=None)
    assert (config.epochs, config.lora_r, config.data) == (3.0, 4, str(facts_file))


def test_run_dir_and_new_run_options_do_not_mix(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--model", "default"]) == 2
    assert "start a new run" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "run"])
def test_the_model_in_a_config_file_is_not_overridden_by_a_default(command, tmp_path, facts_file, monkeypatch):
    from tuneforge.core.api import runs as runs_api

    seen = {}

    def capture(config, *args, **kwargs):
        seen["model"] = config.model
        raise SystemExit(0)

    monkeypatch.setattr(runs_api, "create_run" if command == "train" else "run_pipeline", capture)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"model: /models/mine\ndata: {facts_file}\n")
    with pytest.raises(SystemExit):
        main([command, "--config", str(config_file)])
    assert seen["model"] == "/models/mine"


@pytest.mark.process
def test_the_tuneforge_command_prints_help_when_not_in_a_terminal():
    launched = subprocess.run([sys.executable, "-c", "import sys; from tuneforge.core.entrypoint import main; sys.exit(main())"],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert launched.returncode == 0 and "Usage" in launched.stdout


@pytest.mark.parametrize(
    "args, said",
    [
        (["trian"], "Error: No such command 'trian'. Did you mean 'train'?"),
        (["data", "prepar", "x"], "Error: No such command 'prepar'."),
        (["train", "--bogus"], "Error: No such option: --bogus"),
        (["train", "--epochs", "abc"], "Error: Invalid value for '--epochs'"),
    ],
)
@pytest.mark.process
def test_usage_errors_print_clicks_line_and_the_usage_not_a_traceback(args, said):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("Usage: tuneforge") and "--help' for help" in result.stderr


def test_a_stop_the_user_asked_for_is_not_an_error(capsys):
    from tuneforge.core.errors import print_error
    from tuneforge.core.train import TrainingStopped

    print_error(TrainingStopped("stopped at step 3; checkpoint saved", "resume with `tuneforge train --resume RUN`"))
    assert capsys.readouterr().err.splitlines() == ["stopped: stopped at step 3; checkpoint saved",
                                                     "hint: resume with `tuneforge train --resume RUN`"]
