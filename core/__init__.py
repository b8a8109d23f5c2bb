"""tuneforge's headless core: models, data, training, merge, runs and the CLI.

Nothing here imports Textual; heavy libraries (torch, transformers, peft) are imported
inside the functions that need them so that `import tuneforge.core` stays fast.
"""

__version__ = "0.1.0"
