"""tuneforge's Textual terminal UI: a thin shell over `tuneforge.core`.

It never imports torch at module level and never trains in its own process: it writes a
run directory and starts `python -m tuneforge.core.train RUN_DIR` as a child
(core/training_process.py), then folds the run's events.jsonl as it grows (core/events.py).
"""
