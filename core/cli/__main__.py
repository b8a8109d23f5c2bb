"""`python -m tuneforge.core.cli …`: the CLI, as the `tuneforge` command runs it."""

import sys

from . import main

sys.exit(main())
