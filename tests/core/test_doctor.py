"""`tuneforge doctor`: every check runs on this machine, and a broken part fails with its fix."""

from __future__ import annotations

import sys
from collections import namedtuple

from tuneforge.core.cli import main
from tuneforge.core.doctor import run_checks
from tuneforge.core.methods import QLORA_ON_CPU

NAMES = ["python", "torch", "gpu", "bitsandbytes", "llama-cpp-python", "gguf converter", "default model", "tcmalloc",
         "run folder", "headroom"]


def test_every_check_runs_and_this_machine_passes(home):
    checks = {check.name: check for check in run_checks()}
    assert list(checks) == NAMES
    failed = [check for check in checks.values() if check.status == "fail"]
    assert not failed, failed  # the test machine has everything a CPU run needs
    assert checks["bitsandbytes"].detail.endswith(("on the GPU", f"on the CPU ({QLORA_ON_CPU})"))
    assert "SSE3" in checks["llama-cpp-python"].detail or "GPU offload yes" in checks["llama-cpp-python"].detail
    assert "training" in checks["headroom"].detail
    assert "llama.cpp's own" in checks["gguf converter"].detail
    for check in checks.values():
        assert check.status in ("ok", "warn", "fail")
        assert check.status == "ok" or check.fix, check  # anything not ok says how to fix it


def test_a_broken_part_fails_with_a_one_line_fix(home, monkeypatch, capsys, facts_file):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python failed to install
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("tuneforge.core.hardware.shutil.disk_usage", lambda path: usage(10**12, 10**12, 10**6))  # a full disk
    code = main(["doctor", "--data", str(facts_file)])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    llama = next(i for i, line in enumerate(lines) if line.startswith("FAIL  llama-cpp-python"))
    assert lines[llama + 1].strip().startswith("fix: pip install llama-cpp-python")
    headroom = next(line for line in lines if line.startswith("FAIL  headroom"))
    assert "disk" in headroom and "merge needs" in headroom
    assert lines[-1].endswith(" 2 failed")


def test_a_run_folder_that_cannot_be_written_is_named(home, monkeypatch):
    from tuneforge.core.doctor import _home_writable

    (home / "a-file").write_text("")
    monkeypatch.setenv("TUNEFORGE_HOME", str(home / "a-file" / "tuneforge"))
    check = _home_writable()
    assert check.status == "fail" and "a-file" in check.detail and "TUNEFORGE_HOME" in check.fix


def test_a_missing_converter_fails_with_the_command_that_fetches_it(home, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEFORGE_LLAMA_CPP", str(tmp_path / "no-llama.cpp"))
    (check,) = [check for check in run_checks() if check.name == "gguf converter"]
    assert check.status == "fail" and "tuneforge fetch-converter" in check.fix


def test_a_machine_set_up_to_train_alone_trains_and_says_what_export_lacks(home, monkeypatch, tiny_config):
    """Without llama-cpp-python (a GPU box where llama.cpp did not compile, say), a run is created with the export's
    refusal recorded as a warning, and the doctor names the package, not a lookup error."""
    import importlib.metadata

    from tuneforge.core.api.runs import create_run
    from tuneforge.core.events import Warned

    installed = importlib.metadata.version

    def version(name: str) -> str:
        if name == "llama-cpp-python":
            raise importlib.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.delenv("TUNEFORGE_LLAMA_CPP", raising=False)
    run = create_run(tiny_config(max_steps=2), home / "run")
    warnings = [event for event in run.history().events if isinstance(event, Warned)]
    assert warnings and "export" in warnings[0].error
    (check,) = [check for check in run_checks() if check.name == "gguf converter"]
    assert check.status == "fail" and "llama-cpp-python is not installed" in check.detail
    assert check.fix.startswith("pip install llama-cpp-python")
