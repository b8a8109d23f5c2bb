"""The `tuneforge` command: with no arguments in a terminal it opens the app, otherwise it is the CLI.

The app path skips importing the CLI (typer and click, about 90 ms) so the first screen
appears sooner.
"""

from __future__ import annotations

import sys

from .shutdown import end_without_final_collection


def main() -> int:
    """Open the app for a bare `tuneforge` in a terminal; run the CLI for anything else."""
    try:
        if len(sys.argv) == 1 and sys.stdin.isatty() and sys.stdout.isatty():
            from tuneforge.tui.app import main as open_app

            open_app()
            return 0
        from .cli import main as cli_main

        return cli_main()
    finally:
        end_without_final_collection()

