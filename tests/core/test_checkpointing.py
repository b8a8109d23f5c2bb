"""Partial gradient checkpointing: recomputing every n-th layer gives the gradients of recomputing none."""

from __future__ import annotations

import torch
from transformers import TrainerCallback


def layer_flags(model) -> list[bool]:
    """Whether each decoder layer is checkpointed."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [module.gradient_checkpointing for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]


def test_checkpointing_every_other_layer_gives_the_gradients_of_none():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                         num_attention_heads=4, num_key_value_heads=2))
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
    model.train()
    ids = torch.randint(3, 300, (2, 24), generator=torch.Generator().manual_seed(1))

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}

    none = gradients()
    model.enable_input_require_grads()  # as tuneforge does for adapters under checkpointing
    model.base_model.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False},
                                                           every_n_layers=2)
    assert layer_flags(model) == [True, False, True, False]
    partial = gradients()
    for name, grad in none.items():
        torch.testing.assert_close(partial[name], grad, rtol=1e-5, atol=1e-7, msg=name)


class LayerFlags(TrainerCallback):
    """Records which layers are checkpointed once training starts."""

    flags: list[bool] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.flags = layer_flags(model)


def test_a_run_checkpoints_the_layers_its_config_asks_for(home, tiny_config):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.events import Planned
    from tuneforge.core.train import train_run

    run = create_run(tiny_config(max_steps=2, gradient_checkpointing=True, checkpoint_every=2), home / "run")
    recorder = LayerFlags()
    train_run(run, echo=None, callbacks=[recorder])
    assert recorder.flags == [True, False]  # the tiny Llama's two layers: the first recomputed, the second kept
    planned = next(e for e in run.history().events if isinstance(e, Planned))
    assert planned.gradient_checkpointing and planned.checkpoint_every == 2
