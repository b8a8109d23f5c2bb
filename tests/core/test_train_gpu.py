"""On a CUDA GPU, `auto` trains QLoRA with a 16-bit compute dtype (skipped without a GPU)."""

from __future__ import annotations

import pytest

from tuneforge.core.api.runs import create_run
from tuneforge.core.events import Started, Step
from tuneforge.core.train import train_run


@pytest.mark.gpu
def test_auto_method_is_qlora_with_16_bit_compute_on_a_gpu(home, tiny_config):
    import torch

    run = create_run(tiny_config(method="auto"), home / "run")
    config = run.load_config()
    assert config.method == "qlora" and config.gradient_checkpointing is None  # the memory plan decides at training
    result = train_run(run, echo=None)
    assert run.load_config().gradient_checkpointing is False  # a tiny model fits without it
    assert result.planned_peak_gb and result.peak_memory_gb > 0
    losses = [e.loss for e in run.history().steps]
    assert losses[-1] < 0.8 * losses[0]
    started = next(e for e in run.history().events if isinstance(e, Started))
    assert torch.cuda.get_device_name(0) in started.device
    assert next(e for e in run.history().events if isinstance(e, Step)).memory_gb < 4
