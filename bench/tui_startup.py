"""Cold start of the app: seconds from process launch to the first frame of the Home screen.

Each variant runs in a fresh interpreter, headless, and exits right after its first frame;
the median of several launches is reported next to two baselines measured the same way:
an empty interpreter, and a bare Textual app with one line of text (the floor Textual sets).
The target is ≤ 0.5 s for `tuneforge` (the CLI entry point opening the app).

    python bench/tui_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

FIRST_FRAME = """
import sys, time
from textual.app import App
def report(app):
    print(time.time(), flush=True)
    app.exit()
"""
VARIANTS = {
    "python (empty interpreter)": "import time; print(time.time())",
    "bare Textual app (baseline)": FIRST_FRAME + """
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("hello")
    def on_mount(self):
        self.call_after_refresh(report, self)
Bare().run(headless=True, size=(80, 24))
""",
    "tuneforge (CLI entry → Home)": FIRST_FRAME + """
import tuneforge.core.entrypoint  # the `tuneforge` command, which opens the app without the CLI
from tuneforge.tui.app import TuneforgeApp
class Timed(TuneforgeApp):
    def on_mount(self):
        super().on_mount()  # starts the hardware probe, as the real app does
        self.call_after_refresh(report, self)
Timed().run(headless=True, size=(80, 24))
""",
}
TARGET_SECONDS = 0.5


def launch_seconds(code: str) -> float:
    """Seconds from spawning an interpreter running `code` to the timestamp it prints."""
    started = time.time()
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(output.strip().splitlines()[-1]) - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    for code in VARIANTS.values():  # warm the file cache, as a second launch of the app would find it
        launch_seconds(code)
    results = {name: [launch_seconds(code) for _ in range(runs)] for name, code in VARIANTS.items()}
    baseline = statistics.median(results["bare Textual app (baseline)"])
    print(f"{'variant':<30} {'median s':>9} {'min s':>7} {'max s':>7} {'vs bare Textual':>16}")
    for name, seconds in results.items():
        median = statistics.median(seconds)
        print(f"{name:<30} {median:>9.3f} {min(seconds):>7.3f} {max(seconds):>7.3f} {median - baseline:>+15.3f}s")
    ours = statistics.median(results["tuneforge (CLI entry → Home)"])
    verdict = "meets" if ours <= TARGET_SECONDS else "misses"
    print(f"\ntuneforge first frame: {ours:.3f} s — {verdict} the {TARGET_SECONDS} s target ({runs} launches each)")


if __name__ == "__main__":
    main()
