"""tuneforge's Textual terminal UI: a thin shell over `tuneforge.core`.

It never imports torch at module level and never trains in its own process: it writes a
run directory and starts `tuneforge train RUN_DIR` as a child, then tails events.jsonl.
"""
