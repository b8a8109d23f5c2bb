"""`python -m tuneforge.core.train RUN_DIR [--resume]`: the child process the TUI starts."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
