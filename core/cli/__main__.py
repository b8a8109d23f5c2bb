"""`python -m tuneforge.core.cli …`: the CLI, as the `tuneforge` command runs it."""

import sys

from ..shutdown import end_without_final_collection
from . import main

code = main()
end_without_final_collection()
sys.exit(code)
