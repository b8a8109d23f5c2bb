"""core and exporters never import Textual; the CLI and the app start without importing torch."""

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


def test_cli_starts_without_heavy_libraries():
    modules = imported_modules("import tuneforge.core.cli, tuneforge.core.pipeline")
    assert not {"torch", "transformers", "peft", "trl", "textual"} & modules


def test_the_app_starts_without_heavy_libraries():
    screens = ", ".join(f"tuneforge.tui.screens.{name}" for name in ("home", "model", "data", "train", "run", "export", "chat"))
    modules = imported_modules(f"import tuneforge.tui.app, {screens}")
    assert not {"torch", "transformers", "peft", "trl", "llama_cpp"} & modules


def test_the_first_screen_needs_no_pydantic_or_plotting():
    """Home is all the app imports before its first frame; the other screens load when opened."""
    modules = imported_modules("import tuneforge.tui.app")
    assert not {"pydantic", "textual_plotext", "tuneforge.tui.screens.model"} & modules
