"""`python -m tuneforge.core.train RUN_DIR [--resume]`: the child process the TUI starts."""

import sys

from ..allocator import relaunch_on_tcmalloc
from ..cli import main

if __name__ == "__main__":
    relaunch_on_tcmalloc()
    sys.exit(main(["train", *sys.argv[1:]]))
