"""Keep the libraries' progress bars and deprecation notices out of tuneforge's own output."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries(progress_bars: bool = True) -> None:
    """Silence hub/datasets progress bars, transformers' info logs and known-harmless warnings.

    `progress_bars=False` also turns off every tqdm bar (the TUI, whose screen they would
    scribble over, and a training child whose output goes to a log file).
    """
    for variable in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(variable, "1")
    if not progress_bars:
        os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="bitsandbytes")
    # On CPUs with AVX512-BF16, bitsandbytes looks for an optional hub kernel when it is imported and
    # warns that it is missing (and `kernels` that it is offline); its own CPU kernel does the work, and
    # training keeps 4-bit weights out of the layout that kernel serves (train/setup.py keep_4bit_layout).
    # Both warn as bitsandbytes is imported: call this first.
    for logger in ("bitsandbytes.backends.cpu.ops", "kernels"):
        logging.getLogger(logger).setLevel(logging.ERROR)
