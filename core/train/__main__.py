"""`python -m tuneforge.core.train [--resume] [--accept-changes] RUN_DIR`: the process that trains.

`tuneforge train` and the TUI start this child and watch it; it trains in its own process so
that the one who started it survives whatever ends it (out of memory, a kill).
"""

import argparse
import sys

from ..allocator import relaunch_on_tcmalloc


def main(argv: list[str]) -> int:
    """Train the run directory in this process; exit 0, 130 when stopped, or the error's code."""
    parser = argparse.ArgumentParser(prog="python -m tuneforge.core.train")
    parser.add_argument("run_dir")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--accept-changes", action="store_true")
    args = parser.parse_args(argv)

    from pathlib import Path

    from ..quiet import quiet_libraries

    quiet_libraries(progress_bars=False)  # before the imports below: bitsandbytes warns as it is imported

    from ..errors import TuneforgeError, print_error
    from ..rank import is_main_process
    from ..runs import RunDir
    from .runner import train_run

    try:
        train_run(RunDir(Path(args.run_dir).expanduser().resolve()), resume=args.resume,
                  echo=_echo if is_main_process() else None, accept_changes=args.accept_changes)
    except TuneforgeError as exc:
        print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


def _echo(line: str) -> None:
    """Print a progress line; if whoever read them is gone, go on training without them (events.jsonl has them)."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # later prints, and the flush at exit, go nowhere quietly
        os.close(devnull)


if __name__ == "__main__":
    from ..shutdown import end_without_final_collection

    relaunch_on_tcmalloc()
    code = main(sys.argv[1:])
    end_without_final_collection()
    sys.exit(code)
