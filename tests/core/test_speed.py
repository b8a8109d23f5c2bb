"""The LM head projects only trained positions on a CPU too, with the same loss and gradients."""

from __future__ import annotations

import pytest
import torch


def test_answer_only_projection_same_loss_and_gradients(tiny_llama, monkeypatch):
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from tuneforge.core.train.speed import project_answers_only

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    torch.manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (3, 40))
    labels = ids.clone()
    labels[:, :25] = -100  # the prompt
    labels[2, 32:] = -100  # padding of a shorter example
    projected_rows = []
    original_apply = trl_utils._ChunkedLogProbFunction.apply

    def counting_apply(hidden, *args):
        projected_rows.append(hidden.shape[0])
        return original_apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting_apply)

    def loss_and_gradients():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    monkeypatch.setattr(trl_utils, "_use_triton", lambda device: False)  # TRL's choice on a CPU
    every_loss, every_grads = loss_and_gradients()
    project_answers_only()
    answers_loss, answers_grads = loss_and_gradients()

    assert projected_rows == [3 * 39, int((labels[:, 1:] != -100).sum())]  # every position, then only the answers
    assert answers_loss == pytest.approx(every_loss.item(), rel=1e-6)
    assert every_grads.keys() == answers_grads.keys()
    for name, grad in every_grads.items():
        torch.testing.assert_close(answers_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_large_data_is_batched_by_length(tiny_llama, tmp_path):
    import random

    from transformers import AutoModelForCausalLM

    from tuneforge.core.config import RunConfig
    from tuneforge.core.data.prepare import TokenizedExample
    from tuneforge.core.hardware import Hardware
    from tuneforge.core.runs import RunDir
    from tuneforge.core.train.setup import load_tokenizer
    from tuneforge.core.train.trainers import build_trainer, training_arguments

    rng = random.Random(0)
    examples = []
    for _ in range(480):
        length = rng.randint(20, 300)
        ids = [rng.randrange(1000, 2000) for _ in range(length)]
        examples.append(TokenizedExample("x", ids, [-100] * (length // 2) + ids[length // 2:]))
    config = RunConfig(model=str(tiny_llama), data="-", method="lora", batch_size=4, max_length=512, eval_split=0)
    machine = Hardware(False, None, 0, 0, False, 16, 16, 100)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    tokenizer = load_tokenizer(tiny_llama)

    def padding_share(train_examples: int) -> float:
        args = training_arguments(RunDir(tmp_path / "run"), config, machine, False, False, train_examples)
        trainer = build_trainer(args, config, model, tokenizer, examples, [], [])
        masks = [batch["attention_mask"] for batch in trainer.get_train_dataloader()]
        assert sum(int(mask.sum()) for mask in masks) == sum(len(e.input_ids) for e in examples)  # every token, once
        return sum(int((mask == 0).sum()) for mask in masks) / sum(mask.numel() for mask in masks)

    grouped, random_batches = padding_share(len(examples)), padding_share(0)  # 480 examples ≥ 100 batches of 4
    assert random_batches > 0.25 and grouped < random_batches / 3, (grouped, random_batches)


def test_cpus_with_bf16_matrix_units_train_under_bf16_autocast(home, tiny_config, monkeypatch):
    from transformers import TrainerCallback

    from tuneforge.core.api.runs import create_run
    from tuneforge.core.hardware import Hardware
    from tuneforge.core.train import runner, train_run

    class Precision(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.bf16 = args.bf16
            self.dtypes = {p.dtype for name, p in model.named_parameters() if "lora_" not in name}

    monkeypatch.setattr(runner, "detect", lambda path=None: Hardware(False, None, 0, 0, False, 16, 16, 100, cpu_bf16=True))
    run = create_run(tiny_config(max_steps=12), home / "bf16")
    precision = Precision()
    train_run(run, echo=None, callbacks=[precision])
    assert precision.bf16 and precision.dtypes == {torch.bfloat16}  # the frozen base in bf16, the adapter in fp32
    losses = [e.loss for e in run.history().steps]
    assert losses[-1] < 0.8 * losses[0]


def test_training_processes_get_tcmalloc_when_installed(tmp_path, monkeypatch):
    from tuneforge.core import allocator

    monkeypatch.delenv("TUNEFORGE_ALLOCATOR", raising=False)
    monkeypatch.setattr(allocator, "LIBRARY_DIRS", (str(tmp_path),))
    assert allocator.tcmalloc_library() is None
    assert "LD_PRELOAD" not in allocator.training_environment({"PATH": "/bin"})

    (tmp_path / allocator.TCMALLOC).write_bytes(b"")
    library = str(tmp_path / allocator.TCMALLOC)
    assert allocator.training_environment({})["LD_PRELOAD"] == library
    # A preload the user already has is kept, and tcmalloc is not added twice.
    assert allocator.training_environment({"LD_PRELOAD": "/opt/mine.so"})["LD_PRELOAD"] == f"{library}:/opt/mine.so"
    assert allocator.training_environment({"LD_PRELOAD": library})["LD_PRELOAD"] == library
    monkeypatch.setenv("TUNEFORGE_ALLOCATOR", "system")  # the way to turn it off
    assert allocator.tcmalloc_library() is None


def test_training_processes_get_expandable_cuda_segments_unless_the_person_chose():
    from tuneforge.core.allocator import training_environment

    assert training_environment({})["PYTORCH_ALLOC_CONF"] == "expandable_segments:True"
    mine = {"PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128"}  # the older name, set by the person: left alone
    assert training_environment(mine)["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:128"
    assert "PYTORCH_ALLOC_CONF" not in training_environment(mine)
