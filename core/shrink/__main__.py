"""`python -m tuneforge.core.shrink SHRINK_DIR`: run or continue a shrink; what the app starts in its own session."""

from __future__ import annotations

import sys

from ..errors import TuneforgeError, print_error
from ..quiet import quiet_libraries
from .job import ShrinkDir, run_shrink


def main(argv: list[str] | None = None) -> int:
    """Run the shrink in the directory named on the command line; the exit code says how it ended."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tuneforge.core.shrink SHRINK_DIR", file=sys.stderr)
        return 2
    quiet_libraries()
    try:
        run_shrink(ShrinkDir(args[0]))
    except TuneforgeError as exc:
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    from ..shutdown import end_without_final_collection

    code = main()
    end_without_final_collection()
    sys.exit(code)
