"""`tuneforge …`: the command line, one subcommand per public API call (see docs/architecture.md).

Foreseeable failures print `error: …` and `hint: …` and exit non-zero; no traceback.
"""

from . import inspect, training, shrinking, results  # noqa: F401, I001  (each registers its commands, in this order, on the app)
from .app import app, main

__all__ = ["app", "main"]
