"""The memory planner's arithmetic against hand-computed cases, and auto-fit against its budget."""

from __future__ import annotations

import pytest

from tuneforge.core.catalog import CATALOG, Shape
from tuneforge.core.config import RunConfig
from tuneforge.core.events import Failed, Warned
from tuneforge.core.fit import fit_training, model_fit, settle
from tuneforge.core.hardware import Hardware, cpu_has_amx, cpu_has_bf16
from tuneforge.core.memory import GIB, estimate_training_memory, merge_and_export_needs, model_shape

SMOL = Shape(576, 30, 1536, 49152, kv_dim=192)
SMOL_PARAMS_B = 0.135


def gpu(free_gb: float) -> Hardware:
    return Hardware(cuda=True, gpu_name="test GPU", vram_total_gb=free_gb, vram_free_gb=free_gb, bf16=True,
                    ram_total_gb=64, ram_available_gb=60, disk_free_gb=500, gpu_count=1, compute_capability="8.9")


def cpu(available_gb: float) -> Hardware:
    return Hardware(cuda=False, gpu_name=None, vram_total_gb=0, vram_free_gb=0, bf16=False, ram_total_gb=available_gb,
                    ram_available_gb=available_gb, disk_free_gb=500, cpu_cores=2)


def parts(estimate) -> dict[str, float]:
    return dict(estimate.parts)


def test_lora_on_a_gpu_term_by_term():
    estimate = estimate_training_memory(SMOL_PARAMS_B, SMOL, method="lora", batch_size=4, seq_len=256, lora_r=16,
                                        gradient_checkpointing=False, on_gpu=True, budget_gb=24)
    terms = parts(estimate)
    # bf16 weights: 2 bytes per parameter.
    assert terms["base weights"] == pytest.approx(0.135e9 * 2 / GIB)
    # LoRA r=16 on q, o (576→576), k, v (576→192), gate, up, down (576↔1536), 30 layers: an fp32 weight and
    # two Adam moments each. Their gradients fill in while activations are freed, so they add nothing.
    lora = 30 * 16 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))
    assert lora == 4_884_480
    assert terms["LoRA + optimizer"] == pytest.approx(lora * 12 / GIB)
    assert "gradients" not in terms
    attention_only = estimate_training_memory(SMOL_PARAMS_B, SMOL, method="lora", batch_size=4, seq_len=256, lora_r=16,
                                              gradient_checkpointing=False, on_gpu=True, budget_gb=24,
                                              lora_targets=["q_proj", "v_proj"])
    assert parts(attention_only)["LoRA + optimizer"] == pytest.approx(30 * 16 * (576 + 576 + 576 + 192) * 12 / GIB)
    # Per token and layer: 4·576 + 2·576 + 2·192 + 4·1536 + 7·16 = 10096 bf16 values, plus 12 bytes per hidden unit.
    per_layer = 2 * 10096 + 12 * 576
    assert terms["activations"] == pytest.approx(1024 * 30 * per_layer / GIB)
    # One bf16 tile of 1024 answer tokens × 32768 vocabulary entries, and fp32 hidden-state gradients.
    assert terms["logits"] == pytest.approx((1024 * 32768 * 2 + 1024 * 576 * 8) / GIB)
    assert estimate.reserve_gb == pytest.approx(0.5 + 0.05 * estimate.peak_gb)
    assert estimate.total_gb == pytest.approx(estimate.peak_gb + estimate.reserve_gb)
    assert estimate.verdict == "fits"


def test_an_untied_lm_head_is_told_from_the_parameter_count():
    from tuneforge.core.memory import untied_head

    untied = {name for name, spec in CATALOG.items() if untied_head(spec.params_b * 1e9, spec.shape)}
    assert {"llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "qwen3-8b"} <= untied  # tie_word_embeddings false
    assert not untied & {"smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b", "gemma-3-270m", "gemma-2-2b"}  # tied


def test_qlora_checkpointing_and_a_cpu_change_the_terms():
    qlora = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="qlora", batch_size=4, seq_len=256, lora_r=16,
                                           gradient_checkpointing=True, on_gpu=True, budget_gb=24))
    embeddings = 49152 * 576
    # nf4 + double quantization for the linear layers; the (tied) embeddings in the bf16 compute dtype.
    assert qlora["base weights"] == pytest.approx(((0.135e9 - embeddings) * 0.52 + embeddings * 2) / GIB)
    # Llama 3.1 8B's LM head is its own matrix, and bitsandbytes leaves it 16-bit too.
    llama = CATALOG["llama-3.1-8b"]
    head = 128256 * 4096
    eight_b = parts(estimate_training_memory(llama.params_b, llama.shape, method="qlora", batch_size=1, seq_len=256,
                                             lora_r=16, gradient_checkpointing=True, on_gpu=True, budget_gb=24))
    assert eight_b["base weights"] == pytest.approx(((8.03e9 - 2 * head) * 0.52 + 2 * head * 2) / GIB)
    # Checkpointing keeps each layer's bf16 input, and one layer recomputed.
    assert qlora["activations"] == pytest.approx(1024 * (30 * 576 * 2 + 2 * 10096 + 12 * 576) / GIB)

    on_cpu = estimate_training_memory(SMOL_PARAMS_B, SMOL, method="lora", batch_size=4, seq_len=256, lora_r=16,
                                      gradient_checkpointing=False, on_gpu=False, budget_gb=24)
    terms = parts(on_cpu)
    assert terms["base weights"] == pytest.approx(0.135e9 * 4 / GIB)  # fp32 on a CPU
    assert terms["activations"] == pytest.approx(1024 * 30 * 4 * 10096 / GIB)
    # The CPU tile is folded by torch ops (about five fp32 temporaries); runtime adds the allocator's slack.
    logits = 1024 * 32768 * 20 + 1024 * 576 * 8
    assert terms["logits"] == pytest.approx(logits / GIB)
    assert terms["runtime"] == pytest.approx(0.65)
    assert terms["allocator slack"] == pytest.approx(0.8 * (1024 * 30 * 4 * 10096 + logits) / GIB)
    assert on_cpu.reserve_gb == 0 and on_cpu.device == "CPU"
    on_tcmalloc = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="lora", batch_size=4, seq_len=256, lora_r=16,
                                                 gradient_checkpointing=False, on_gpu=False, budget_gb=24,
                                                 cpu_allocator="tcmalloc"))
    assert on_tcmalloc["allocator slack"] == pytest.approx(0.3 * (1024 * 30 * 4 * 10096 + logits) / GIB)
    checkpointed = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="lora", batch_size=4, seq_len=256, lora_r=16,
                                                  gradient_checkpointing=True, on_gpu=False, budget_gb=24))
    kept = 1024 * (30 * 576 * 4 + 4 * 10096)  # each layer's fp32 input, and one layer recomputed
    assert checkpointed["activations"] == pytest.approx(kept / GIB)
    # The intermediates every layer still makes (and frees) leave 0.4 of their size in the allocator.
    assert checkpointed["allocator slack"] == pytest.approx((0.8 * (kept + logits) + 0.4 * 1024 * 30 * 4 * 10096) / GIB)


def test_any_lora_method_plans_a_4bit_base_with_load_in_4bit_and_its_hints_name_the_option_that_applies():
    from tuneforge.core.errors import ConfigError
    from tuneforge.core.methods import smaller_base_options

    def weights(method: str, load_in_4bit: bool = False) -> float:
        return parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method=method, batch_size=4, seq_len=256, lora_r=16,
                                              gradient_checkpointing=True, on_gpu=True, budget_gb=24, load_in_4bit=load_in_4bit))["base weights"]

    assert weights("grpo", load_in_4bit=True) == weights("qlora") < 0.5 * weights("grpo")
    with pytest.raises(ConfigError, match="does not train LoRA"):
        RunConfig.from_dict({"data": "d.jsonl", "method": "full", "load_in_4bit": True})
    assert smaller_base_options("grpo").startswith("--load-in-4bit")
    assert smaller_base_options("dora").startswith("--load-in-4bit")
    assert smaller_base_options("lora").startswith("--method qlora") and smaller_base_options("full").startswith("--method qlora")
    assert smaller_base_options("grpo", load_in_4bit=True) == smaller_base_options("qlora") == "a smaller model"


def test_whole_model_methods_and_objectives():
    full = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="full", batch_size=1, seq_len=128, lora_r=16,
                                          gradient_checkpointing=False, on_gpu=True, budget_gb=24))
    assert full["base weights"] == pytest.approx(0.135e9 * 4 / GIB)  # fp32 master weights
    assert full["trained + optimizer"] == pytest.approx(0.135e9 * 8 / GIB)  # two Adam moments
    activations = 128 * 30 * (2 * (4 * 576 + 2 * 576 + 2 * 192 + 4 * 1536) + 12 * 576)
    logits = 128 * 32768 * 2 + 128 * 576 * 8
    assert full["activations"] == pytest.approx(activations / GIB)
    # fp32 gradients of every weight outgrow the freed activations and logits of 128 tokens.
    assert full["gradients"] == pytest.approx((0.135e9 * 4 - activations - logits) / GIB)

    freeze = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="freeze", batch_size=1, seq_len=128, lora_r=16,
                                            gradient_checkpointing=False, on_gpu=True, budget_gb=24, freeze_layers=2))
    layer = 576 * (2 * 576 + 2 * 192) + 3 * 576 * 1536
    assert freeze["trained + optimizer"] == pytest.approx(2 * layer * 8 / GIB)
    # Only the two trained layers keep activations: nothing flows back below them.
    assert freeze["activations"] == pytest.approx(128 * 2 * (2 * (4 * 576 + 2 * 576 + 2 * 192 + 4 * 1536) + 12 * 576) / GIB)

    prompt = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="prompt", batch_size=1, seq_len=128, lora_r=16,
                                            gradient_checkpointing=False, on_gpu=True, budget_gb=24))
    assert prompt["trained + optimizer"] == pytest.approx(20 * 576 * 12 / GIB)  # 20 virtual tokens

    reward = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="reward", batch_size=2, seq_len=128, lora_r=16,
                                            gradient_checkpointing=False, on_gpu=True, budget_gb=24))
    assert reward["logits"] == 0  # a score per sequence, no vocabulary
    dpo = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="dpo", batch_size=2, seq_len=128, lora_r=16,
                                         gradient_checkpointing=False, on_gpu=True, budget_gb=24))
    sft = parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="lora", batch_size=2, seq_len=128, lora_r=16,
                                         gradient_checkpointing=False, on_gpu=True, budget_gb=24))
    assert dpo["activations"] == pytest.approx(2 * sft["activations"])  # chosen and rejected
    assert dpo["logits"] == pytest.approx(2 * 2 * 128 * 49152 * 12 / GIB)  # whole fp32 logits, log-softmax, gradient


def test_gemma_adds_its_output_norms_its_head_gradient_and_a_loading_peak():
    gemma = Shape(640, 18, 2048, 262144, kv_dim=256, q_dim=1024, post_norms=True)  # Gemma 3 270M
    short = parts(estimate_training_memory(0.268, gemma, method="lora", batch_size=1, seq_len=128, lora_r=16,
                                           gradient_checkpointing=False, on_gpu=False, budget_gb=24))
    # Four RMSNorms a layer keep 8 × hidden values per token, beside the attention's and the MLP's.
    assert short["activations"] == pytest.approx(128 * 18 * 4 * (8 * 640 + 2 * 1024 + 2 * 256 + 4 * 2048 + 7 * 16) / GIB)
    # A short run of a 262k-vocabulary model peaks while it loads: fp32 weights beside the mapped 16-bit checkpoint.
    assert sum(short.values()) == pytest.approx(0.268e9 * (4 + 2) / GIB + 0.65)
    assert "loading" not in parts(estimate_training_memory(SMOL_PARAMS_B, SMOL, method="lora", batch_size=1, seq_len=128,
                                                           lora_r=16, gradient_checkpointing=False, on_gpu=False, budget_gb=24))
    full = parts(estimate_training_memory(0.268, gemma, method="full", batch_size=4, seq_len=256, lora_r=16,
                                          gradient_checkpointing=False, on_gpu=True, budget_gb=24))
    # The LM head's fp32 gradient (tied to the embeddings) is made first, while every activation is alive.
    assert full["gradients"] == pytest.approx(262144 * 640 * 4 / GIB)


def test_merge_and_export_needs():
    merge, export = merge_and_export_needs(1.0, ("q4_k_m", "q8_0"))
    sixteen = 1e9 * 2 / GIB
    assert merge.ram_gb == pytest.approx(0.5 + sixteen) and merge.disk_gb == pytest.approx(sixteen)
    q4, q8 = 1e9 * 4.89 / 8 / GIB, 1e9 * 8.5 / 8 / GIB
    assert export.disk_gb == pytest.approx(q4 + q8 + sixteen)  # the f16 source is written, then removed
    assert export.ram_gb == pytest.approx(0.5 + 2 * sixteen + q8)  # fp32 reference below 2 GiB, beside the largest GGUF


def test_model_shape_reads_grouped_query_attention(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"hidden_size": 1024, "num_hidden_layers": 28, "intermediate_size": 3072, "vocab_size": 151936, '
        '"num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": true}')
    params_b, shape = model_shape(tmp_path)
    assert (shape.queries, shape.keys) == (2048, 1024)
    assert params_b == pytest.approx(0.596, rel=0.01)  # Qwen3-0.6B's published 0.596 B
    assert model_shape(tmp_path / "missing") is None


@pytest.mark.parametrize("hardware", [gpu(4), gpu(8), gpu(12), gpu(24), cpu(8), cpu(16), cpu(64)], ids=str)
def test_auto_fit_never_proposes_a_run_over_the_budget(hardware):
    proposals = 0
    for spec in CATALOG.values():
        for method in ("auto", "lora", "full", "dpo"):
            for batch_size, grad_accum in ((8, 1), (16, 2), (3, 1)):
                config = RunConfig(model=spec.name, data="-", method=method, batch_size=batch_size, grad_accum=grad_accum,
                                   max_length=2048)
                lengths = [2048, 1500, 900, 700, 400, 300, 200, 100]
                fit = fit_training(config, hardware, spec.params_b, spec.shape, lengths, answer_share=0.5)
                # The effective batch is kept (rounded up by at most one micro-batch).
                assert batch_size * grad_accum <= fit.batch_size * fit.grad_accum < batch_size * grad_accum + fit.batch_size
                if fit.fits:
                    proposals += 1
                    assert fit.plan.total_gb <= 0.85 * hardware.memory_budget_gb
                    assert fit.plan.budget_gb == hardware.memory_budget_gb
                else:  # nothing fits: the smallest candidate comes back, and says so
                    assert fit.plan.verdict != "fits" and fit.batch_size == 1 and fit.gradient_checkpointing
    assert proposals > 0


def test_auto_fit_order_speed_first():
    config = RunConfig(model="qwen2.5-1.5b", data="-", method="qlora", batch_size=8, max_length=1024)
    spec = CATALOG["qwen2.5-1.5b"]
    roomy = fit_training(config, gpu(80), spec.params_b, spec.shape, [1024])
    assert (roomy.batch_size, roomy.grad_accum, roomy.gradient_checkpointing, roomy.changes) == (8, 1, False, ())
    # A smaller card: first a smaller batch without checkpointing, then checkpointing of fewer layers, then of
    # more, then shorter examples.
    sizes = []
    for free in (16, 8, 5, 2.25):
        fit = fit_training(config, gpu(free), spec.params_b, spec.shape, [1024] + [256] * 99)
        recomputed = 1 / fit.checkpoint_every if fit.gradient_checkpointing else 0
        sizes.append((fit.batch_size, recomputed, fit.max_length))
        assert fit.fits
    assert sizes == sorted(sizes, key=lambda s: (-s[2], s[1], -s[0]))  # never a longer length after a cut, etc.
    assert any("checkpointing on" in change for change in fit_training(config, gpu(8), spec.params_b, spec.shape, [1024]).changes)
    cut = fit_training(config, gpu(2.25), spec.params_b, spec.shape, [1024] + [256] * 99)
    assert cut.fits and cut.max_length == 256 and cut.truncated == 1 and any("max_length" in c for c in cut.changes)
    # A fixed checkpointing setting is kept.
    fixed = fit_training(config.with_updates(gradient_checkpointing=False), gpu(8), spec.params_b, spec.shape, [1024])
    assert not fixed.gradient_checkpointing


def test_partial_checkpointing_keeps_the_skipped_layers_activations_and_auto_fit_tries_it_first():
    spec = CATALOG["llama-3.1-8b"]
    hidden, layers = spec.shape.hidden, spec.shape.layers

    def activations(checkpointing: bool, every: int = 1) -> float:
        return parts(estimate_training_memory(spec.params_b, spec.shape, method="qlora", batch_size=4, seq_len=1024, lora_r=16,
                                              gradient_checkpointing=checkpointing, on_gpu=True, budget_gb=24,
                                              checkpoint_every=every))["activations"] * GIB

    none, every_layer = activations(False), activations(True)
    per_layer = none / (4 * 1024 * layers)  # bytes per token of one layer that keeps everything
    for every in (2, 4):
        checkpointed = -(-layers // every)  # layers 0, n, 2n, … as transformers picks them
        expected = 4 * 1024 * (checkpointed * hidden * 2 + (layers - checkpointed) * per_layer + per_layer)
        assert activations(True, every) == pytest.approx(expected)
    assert none > activations(True, 4) > activations(True, 2) > every_layer

    # A card where no checkpointing fits at a quarter of the batch, but every 4th layer does at the full batch.
    config = RunConfig(model="llama-3.1-8b", data="-", method="qlora", batch_size=8, max_length=1024)
    fits = {free: fit_training(config, gpu(free), spec.params_b, spec.shape, [1024]) for free in (16, 18, 20, 22, 24)}
    partial = [fit for fit in fits.values() if fit.gradient_checkpointing and fit.checkpoint_every > 1]
    assert partial and all(fit.fits for fit in partial)
    assert any("every 4th layer" in change or "every 2nd layer" in change for fit in partial for change in fit.changes)
    fixed = fit_training(config.with_updates(checkpoint_every=1), gpu(16), spec.params_b, spec.shape, [1024])
    assert fixed.checkpoint_every == 1  # a fixed setting is kept


def test_settle_without_auto_fit_keeps_the_configuration():
    config = RunConfig(model="qwen2.5-7b", data="-", method="lora", batch_size=8, auto_fit=False, gradient_checkpointing=False)
    spec = CATALOG["qwen2.5-7b"]
    fit = settle(config, gpu(8), spec.params_b, spec.shape, [512])
    assert (fit.batch_size, fit.gradient_checkpointing) == (8, False) and fit.plan.verdict == "too big"


def test_a_distill_plan_holds_the_teacher_at_its_own_size(tmp_path):
    # A shrink's teacher is the larger model the student was cut from: its weights are in memory too.
    (tmp_path / "config.json").write_text(
        '{"hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536, "vocab_size": 49152, '
        '"num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": true}')
    teacher_b = model_shape(tmp_path)[0]
    student = Shape(576, 20, 1536, 49152, kv_dim=192)
    student_b = teacher_b - 10 * (teacher_b - 0.0283) / 30  # ten fewer layers; embeddings 49152 × 576
    same = RunConfig(model="-", data="-", method="distill", teacher="unknown/model", auto_fit=False)
    larger = same.with_updates(teacher=str(tmp_path))
    planned = {name: parts(settle(config, gpu(24), student_b, student, [256]).plan)["base weights"] for name, config in
               (("same", same), ("larger", larger))}
    assert planned["same"] == pytest.approx(2 * student_b * 1e9 * 2 / GIB, rel=1e-6)  # a teacher as large as the student
    assert planned["larger"] == pytest.approx((student_b + teacher_b) * 1e9 * 2 / GIB, rel=1e-6)


def test_catalog_fit_badges_come_from_the_planner():
    assert model_fit(CATALOG["smollm2-135m"], cpu(16)) == "yes"
    assert model_fit(CATALOG["qwen2.5-1.5b"], cpu(16)) == "slow"
    assert model_fit(CATALOG["qwen2.5-7b"], cpu(16)) == "no"
    assert model_fit(CATALOG["qwen2.5-7b"], gpu(24)) == "yes"  # qlora by default on a GPU
    assert model_fit(CATALOG["qwen2.5-7b"], gpu(4)) == "no"


def test_cpu_bf16_is_read_from_the_cpu_flags(tmp_path, monkeypatch):
    flags = tmp_path / "cpuinfo"
    flags.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_bf16(flags)
    flags.write_text("processor : 0\nflags : fpu avx2\n")
    assert not cpu_has_bf16(flags)
    assert not cpu_has_bf16(tmp_path / "missing")
    flags.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16 amx_tile amx_int8\n")
    assert cpu_has_amx(flags)
    monkeypatch.setenv("TUNEFORGE_CPU_BF16", "0")
    assert not cpu_has_bf16(flags)  # kept in fp32 when asked
    flags.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_bf16\n")
    assert not cpu_has_amx(flags)
    assert Hardware(False, None, 0, 0, False, 16, 16, 100, cpu_bf16=True).compute_dtype == "bfloat16"
    assert cpu(16).compute_dtype == "float32"


def tiny_plan_totals(tiny_config, batch_sizes):
    """The planner's totals for the tiny Llama on the facts, at each batch size (CPU, no checkpointing)."""
    from tuneforge.core.api.data import check_data
    from tuneforge.core.fit import plan_for

    config = tiny_config()
    stats = check_data(config.data, config.model, config.max_length, config.eval_split).stats
    dims = model_shape(config.model)
    share = stats.trained_tokens / stats.total_tokens
    return [plan_for(config, cpu(64), *dims, batch_size=size, seq_len=max(stats.token_lengths),
                     gradient_checkpointing=False, answer_share=share).total_gb for size in batch_sizes]


def test_training_fits_itself_and_records_plan_and_peak(home, tiny_config, monkeypatch):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.train import runner, train_run

    batch_two, batch_four = tiny_plan_totals(tiny_config, (2, 4))
    # Room for batch 2 but not batch 4 (with the planner's 15 % margin).
    monkeypatch.setattr(runner, "detect", lambda path=None: cpu((batch_two + batch_four) / 2 / 0.85))
    run = create_run(tiny_config(batch_size=4, max_steps=4), home / "fitted")
    result = train_run(run, echo=None)

    config = run.load_config()
    assert (config.batch_size, config.grad_accum, config.gradient_checkpointing) == (2, 2, False)
    history = run.history()
    plan = history.plan
    assert plan.batch_size == 2 and plan.changes and plan.verdict == "fits"
    assert set(plan.parts) == {"base weights", "LoRA + optimizer", "activations", "logits", "runtime", "allocator slack"}
    recorded = history.finished.result
    assert recorded.planned_peak_gb == pytest.approx(plan.peak_gb, abs=1e-3)
    assert recorded.peak_memory_gb == result.peak_memory_gb > 0.3  # this process's peak RSS


def test_a_process_started_by_a_large_one_reports_its_own_peak_not_its_launchers():
    import subprocess
    import sys

    held = bytearray(1536 * 2**20)
    held[::4096] = b"\x01" * len(held[::4096])  # resident: 1.5 GB in this process when the child starts
    code = "from tuneforge.core.train.callbacks import peak_memory_gb; print(peak_memory_gb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1])
    assert 0.01 < child < 1.2, child  # torch imported, far less than the launcher (ru_maxrss said 1.5 or more)
    del held


def test_a_run_the_plan_cannot_fit_is_refused_before_loading(home, tiny_config, monkeypatch):
    from tuneforge.core.api.runs import create_run
    from tuneforge.core.errors import ResourceError
    from tuneforge.core.train import runner, train_run

    monkeypatch.setattr(runner, "detect", lambda path=None: cpu(0.3))
    monkeypatch.setattr(runner, "load_base_model", lambda *a, **k: pytest.fail("the model was loaded"))
    run = create_run(tiny_config(), home / "too-big")
    with pytest.raises(ResourceError, match="GB is free") as refused:
        train_run(run, echo=None)
    assert "qlora" in refused.value.hint
    events = run.history().events
    assert isinstance(events[-1], Failed) and run.last_checkpoint() is None
    # Merge's needs are told at the start too, not hours later when it runs.
    assert any(isinstance(e, Warned) and e.error.startswith("merge after training will need") for e in events)


def test_a_batch_larger_than_the_data_is_planned_as_the_batch_that_can_happen():
    from tuneforge.core.settle import DataFacts, settle_batch, settle_run
    from tuneforge.core.train.replay import replay_prompts

    facts = DataFacts([40] * 32, train_examples=32)
    config = RunConfig(model="default", data="-", method="lora", batch_size=512, grad_accum=2, replay=0)
    settled = settle_run(config, cpu(20), facts, (SMOL_PARAMS_B, SMOL))
    assert (settled.config.batch_size, settled.config.grad_accum) == (32, 1)
    assert settled.fit.batch_size == 32 and any("more than the 32 training examples" in n for n in settled.notes)
    replayed, note = settle_batch(config.with_updates(replay=1.0), facts)
    assert replayed.batch_size == 32 + len(replay_prompts()) and "up to" in note  # every replayed answer may share the step
    ordinary = settle_run(config.with_updates(batch_size=8), cpu(20), facts, (SMOL_PARAMS_B, SMOL))
    assert (ordinary.config.batch_size, ordinary.config.grad_accum) == (8, 2) and not any("more than" in n for n in ordinary.notes)


def test_a_padding_free_batch_is_planned_as_its_longest_examples_end_to_end():
    """One long example among short ones: a padded batch pays the long one's length on every row, a padding-free
    batch only the tokens its longest examples hold, and the activations and logits follow that count."""
    llama = CATALOG["llama-3.1-8b"]
    lengths = [100] * 40 + [500]
    common = dict(model="m", data="d", method="qlora", batch_size=8, auto_fit=False, gradient_checkpointing=False)
    padded = settle(RunConfig(**common, padding_free=False), gpu(24), llama.params_b, llama.shape, lengths).plan
    packed = settle(RunConfig(**common, padding_free=True), gpu(24), llama.params_b, llama.shape, lengths).plan
    assert parts(packed)["activations"] == pytest.approx(parts(padded)["activations"] * (7 * 100 + 500) / (8 * 500))
    assert parts(packed)["logits"] == pytest.approx(parts(padded)["logits"] * 1200 / 4000)
    assert parts(packed)["base weights"] == parts(padded)["base weights"]
    cut = settle(RunConfig(**common, padding_free=True, max_length=256), gpu(24), llama.params_b, llama.shape, lengths).plan
    assert parts(cut)["activations"] == pytest.approx(parts(padded)["activations"] * (7 * 100 + 256) / (8 * 500))


def test_kto_is_planned_with_its_second_sequence_and_never_split_below_two_rows():
    """Each KTO row runs its answer and a mismatched one (the KL estimate), and a micro-batch of one has no other row."""
    spec = CATALOG["qwen2.5-7b"]
    common = dict(model="m", data="d", batch_size=8, auto_fit=False, gradient_checkpointing=False)
    kto = parts(settle(RunConfig(**common, method="kto"), gpu(80), spec.params_b, spec.shape, [512]).plan)
    sft = parts(settle(RunConfig(**common, method="lora"), gpu(80), spec.params_b, spec.shape, [512]).plan)
    assert kto["activations"] == pytest.approx(2 * sft["activations"])
    fit = fit_training(RunConfig(model="m", data="d", method="kto", batch_size=8), gpu(17), spec.params_b, spec.shape, [4096])
    assert fit.batch_size == 2 and not fit.fits  # the smallest candidate, which does not fit, is two rows, not one
