"""The distribution ships every package: pyproject.toml lists them one by one (a package-dir mapping), so a folder
added without its line would import from a checkout and be missing from an installed wheel."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for name, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join((name, *relative.parts)))
    assert found == listed, f"not listed: {sorted(found - listed)}; listed but not there: {sorted(listed - found)}"
