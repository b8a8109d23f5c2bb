"""core and exporters never import Textual; the CLI and the app start without importing torch, and import only the
core's API and the light modules that read or describe (an allow-list)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(output.split())


@pytest.mark.parametrize("package", ["core", "exporters"])
def test_headless_packages_do_not_import_textual(package):
    for source in (ROOT / package).rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert "import textual" not in text and "from textual" not in text, source


SHELLS_MAY_IMPORT = {
    # The public API, one module per kind of user action (core/api/), and two more actions: the demo and doctor.
    "tuneforge.core.api", "tuneforge.core.demo", "tuneforge.core.doctor",
    # What the shells read or describe without doing any work: settings, a run's and a job's files and events, errors and
    # their hints, the machine, the tables of methods, models and chat templates, the memory plan, settling, paths,
    # durations, the launch of several processes in words, quieting the libraries' logs, how a GRPO reward is written (the
    # Train form checks each as it is typed), (whoever sees a training child die records why) the diagnosis, and how a
    # process ends.
    "tuneforge.core.config", "tuneforge.core.runs", "tuneforge.core.jobs", "tuneforge.core.events", "tuneforge.core.errors",
    "tuneforge.core.hardware", "tuneforge.core.methods", "tuneforge.core.catalog", "tuneforge.core.chat_templates",
    "tuneforge.core.memory", "tuneforge.core.fit", "tuneforge.core.settle", "tuneforge.core.paths", "tuneforge.core.progress",
    "tuneforge.core.accelerate_setup", "tuneforge.core.quiet", "tuneforge.core.diagnosis", "tuneforge.core.atomic",
    "tuneforge.core.rewards", "tuneforge.core.shutdown",
    # Of the exporters: the export report, the GGUF type table, and fetching llama.cpp's converter (`tuneforge fetch-converter`).
    "tuneforge.exporters.report", "tuneforge.exporters.gguf.types", "tuneforge.exporters.gguf.llama_cpp",
}
"""The app (tui) and the CLI (core/cli) import nothing else of tuneforge: not training, data, merging or export internals."""


@pytest.mark.parametrize("shell", ["tuneforge.tui", "tuneforge.core.cli"])
def test_the_shells_import_only_the_api_and_light_modules(shell):
    import grimp

    graph = grimp.build_graph("tuneforge.core", "tuneforge.tui", "tuneforge.exporters", include_external_packages=False)
    # Also its own modules, the package (its __version__), and the entry point and the app that `tuneforge` opens.
    allowed = (shell, "tuneforge.core.entrypoint", "tuneforge.tui.app", *SHELLS_MAY_IMPORT)
    outside = {f"{module} -> {imported}"
               for module in graph.find_descendants(shell) | {shell}
               for imported in graph.find_modules_directly_imported_by(module)
               if imported != "tuneforge.core" and not any(imported == name or imported.startswith(f"{name}.") for name in allowed)}
    assert not outside, f"{shell} imports what is not the API or a light module: {sorted(outside)}"


def test_cli_starts_without_heavy_libraries():
    modules = imported_modules("import tuneforge.core.cli, tuneforge.core.api.runs, tuneforge.core.api.data")
    assert not {"torch", "transformers", "peft", "trl", "textual"} & modules


def test_the_app_starts_without_heavy_libraries():
    screens = ", ".join(f"tuneforge.tui.screens.{name}" for name in ("home", "model", "data", "train", "run", "export", "chat"))
    modules = imported_modules(f"import tuneforge.tui.app, {screens}")
    assert not {"torch", "transformers", "peft", "trl", "llama_cpp"} & modules


def test_the_first_screen_needs_no_pydantic_or_plotting():
    """Home is all the app imports before its first frame; the other screens load when opened."""
    modules = imported_modules("import tuneforge.tui.app")
    assert not {"pydantic", "textual_plotext", "tuneforge.tui.screens.model"} & modules
