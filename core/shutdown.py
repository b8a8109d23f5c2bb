"""How a tuneforge process ends: the last step of the command, the training child and the shrink child."""

from __future__ import annotations


def end_without_final_collection() -> None:
    """Spare a process that is about to end the garbage collections Python runs as it shuts down: with torch and
    transformers loaded they walk millions of objects for 0.5 s, after every command, to free memory the process is
    about to give back whole. Objects are still released as their references go; what tuneforge writes is closed by
    its own `with` blocks before this. Only for the process's last step: frozen objects are never collected."""
    import gc

    gc.freeze()
