"""tuneforge's public API: one call per user action, grouped by what the person works on.

The CLI (`core/cli/`) and the app (`tui/`) are thin shells over it, and over a few light modules that only
read or describe (config, runs, events, errors, hardware, methods, catalog, memory, fit, settle, paths,
progress; `tests/test_import_hygiene.py` holds the list). Each module imports what is heavy (torch,
transformers, llama.cpp) inside the calls that need it, so a shell starts without it.

- `data`: check a dataset; draft one from documents; review the drafted pairs
- `runs`: create, plan, start detached, stop, resume, wait; train (start, then wait); merge; the whole pipeline
- `export`: a run or a model folder to verified GGUF files; a LoRA adapter as a GGUF adapter
- `evaluation`: a run's answers scored, the report, the blind comparison, runs compared
- `shrink`: plan, create, start detached, stop, resume; shrink (start, then wait)
- `models`: the catalog, the models on this machine, whether one fits and exports
- `chat`: a trained model or a GGUF to talk to, and its sampling settings
"""

from __future__ import annotations

from collections.abc import Callable

Echo = Callable[[str], None] | None
"""Where a call's progress lines go (None: nowhere)."""
