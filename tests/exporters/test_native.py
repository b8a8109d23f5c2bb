"""llama.cpp as native code: the one loader's buffer setting on every CPU, and crashes that end a child, not tuneforge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.core.hardware import cpu_has_amx
from tuneforge.exporters.gguf.native import EXTRA_BUFTS_VARIABLE, LlamaCrashed, extra_buffers_allowed, open_llama
from tuneforge.exporters.gguf.probe import PROBE_TOKENS, evaluate, evaluate_in_child, write_probe_files

pytestmark = pytest.mark.process  # starts child processes: left out of `make test-fast`


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory) -> dict[str, Path]:
    return write_probe_files(tmp_path_factory.mktemp("probe"))


def test_extra_buffers_are_off_exactly_where_the_cpu_has_amx(monkeypatch):
    monkeypatch.delenv(EXTRA_BUFTS_VARIABLE, raising=False)
    assert extra_buffers_allowed() == (not cpu_has_amx())
    for value, allowed in (("0", False), ("off", False), ("1", True), ("yes", True)):
        monkeypatch.setenv(EXTRA_BUFTS_VARIABLE, value)
        assert extra_buffers_allowed() is allowed


@pytest.mark.parametrize("setting", [None, "0", "1"])
def test_every_quantized_type_loads_and_evaluates_with_the_setting_it_was_given(probe_files, monkeypatch, setting):
    if setting is None:
        monkeypatch.delenv(EXTRA_BUFTS_VARIABLE, raising=False)
    elif setting == "1" and cpu_has_amx():
        pytest.skip("llama.cpp's AMX buffers trap on this CPU: that is what the workaround avoids")
    else:
        monkeypatch.setenv(EXTRA_BUFTS_VARIABLE, setting)
    for qtype, path in probe_files.items():
        with open_llama(path, n_ctx=64) as llm:
            # Llama() keeps the parameters it loaded the model with: the setting reached llama.cpp.
            assert llm.model_params.use_extra_bufts is extra_buffers_allowed(), qtype
        found = evaluate_in_child(path)
        assert found == {"positions": len(PROBE_TOKENS), "vocab": 259, "finite": True}, qtype


def test_llama_cpp_generates_on_one_thread_per_physical_core_this_process_may_use(probe_files, monkeypatch):
    import os

    import psutil

    from tuneforge.core import hardware

    machines = {  # (logical CPUs, physical cores, CPUs this process may use) → generation threads
        (2, 2, 2): 2,  # a VM of two cores without hyperthreads: llama-cpp-python's own default would be 1
        (16, 8, 16): 8,  # a desktop with hyperthreads: one thread per core, as llama-cpp-python would choose
        (32, 16, 4): 2,  # a container given 4 of a hyperthreaded machine's CPUs: not 16 threads on 4 CPUs
    }
    for (logical, physical, usable), threads in machines.items():
        monkeypatch.setattr(psutil, "cpu_count", lambda logical=True, cpus=logical, cores=physical: cpus if logical else cores)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, usable=usable: set(range(usable)), raising=False)
        assert (hardware.usable_cores(), hardware.usable_cpus()) == (threads, usable)
    with open_llama(probe_files["q8_0"], n_ctx=64) as llm:
        assert (llm.n_threads, llm.n_threads_batch) == (threads, usable)  # what open_llama gave llama.cpp


def test_the_loader_leaves_llama_cpp_as_it_found_it(probe_files):
    import llama_cpp.llama as llama_module

    before = llama_module.llama_cpp.llama_model_default_params
    assert evaluate(probe_files["q8_0"])["finite"]
    assert llama_module.llama_cpp.llama_model_default_params is before
    assert llama_module.llama_cpp.llama_model_default_params().use_extra_bufts  # llama.cpp's own default, untouched


@pytest.mark.parametrize("signal_name", ["SIGILL", "SIGSEGV"])
def test_a_child_killed_by_a_signal_is_an_error_naming_file_signal_and_fix(probe_files, llama_crash, signal_name):
    llama_crash("q4_k_m", "eval", signal_name)
    assert evaluate_in_child(probe_files["q8_0"])["finite"]  # only the file the crash is planted in dies
    with pytest.raises(LlamaCrashed) as info:
        evaluate_in_child(probe_files["q4_k_m"])
    assert str(probe_files["q4_k_m"]) in info.value.message and f"crashed ({signal_name})" in info.value.message
    if signal_name == "SIGILL":
        assert "GGML_NATIVE=OFF" in info.value.hint or EXTRA_BUFTS_VARIABLE in info.value.hint
    else:
        assert "export it again" in info.value.hint


def test_doctor_reports_a_llama_cpp_that_crashes_as_a_failed_check(llama_crash):
    from tuneforge.core.doctor import _llama_evaluates

    assert _llama_evaluates().status == "ok"
    llama_crash("q8_0", "eval", "SIGILL")
    check = _llama_evaluates()
    assert check.status == "fail" and "a q8_0 model crashes llama.cpp" in check.detail and "SIGILL" in check.detail
    assert check.fix


def test_a_crash_while_verifying_fails_that_file_and_the_export_goes_on(tiny_llama, tmp_path, llama_crash, capsys):
    from tuneforge.core.cli import main
    from tuneforge.core.errors import ExportError

    llama_crash("q8_0", "eval", "SIGILL")
    out = tmp_path / "out"
    code = main(["export", str(tiny_llama), "--quant", "q8_0,f16", "--out", str(out)])
    captured = capsys.readouterr()
    stem = tiny_llama.name
    assert code == ExportError.exit_code and "Traceback" not in captured.err
    assert f"error: verification failed for {stem}-q8_0.gguf.unverified" in captured.err
    report = {Path(entry["file"]).name: entry for entry in json.loads((out / "export-report.json").read_text())["files"]}
    crashed = report[f"{stem}-q8_0.gguf.unverified"]
    assert not crashed["passed"] and not crashed["completed"]
    (check,) = crashed["checks"]
    assert "llama.cpp crashed (SIGILL) while verifying it" in check["detail"] and check["hint"]
    # The next file was verified in full after the crash, and took its final name.
    after = report[f"{stem}-f16.gguf"]
    assert after["completed"] and {c["name"] for c in after["checks"]} >= {"loads", "tokenizer", "logits", "chat"}
    assert next(c for c in after["checks"] if c["name"] == "logits")["passed"]
    assert sorted(p.name for p in out.iterdir() if "gguf" in p.name) == [f"{stem}-f16.gguf", f"{stem}-q8_0.gguf.unverified"]
    assert not list(out.glob(".verify-reference-*")), "the reference folder was left behind"


def test_a_run_whose_only_export_crashed_is_not_exported(home, tiny_config, llama_crash, capsys):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.cli import main
    from tuneforge.core.train import train_run

    run = create_run(tiny_config(max_steps=2))  # under TUNEFORGE_HOME/runs, where `tuneforge runs` looks
    train_run(run, echo=None)
    llama_crash("q8_0", "eval", "SIGILL")
    assert main(["export", str(run.path), "--quant", "q8_0"]) != 0
    assert run.state() == "export failed"
    assert "crashed (SIGILL)" in run.last_export_failure()
    capsys.readouterr()
    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert "export failed" in listing and "crashed (SIGILL)" in listing
