"""The memory planner: what a training run, and the merge and export after it, will need.

A plan is a list of named terms a person can read, in GiB, and is meant to match the peak a
run records (torch.cuda.max_memory_allocated on a GPU, peak RSS on a CPU; see
bench/plan.py for how close it comes):

- **base weights**: nf4 with double quantization ≈ 0.52 bytes per parameter of the linear
  layers under QLoRA (the embeddings, an untied LM head and a mixture's experts stay in the compute dtype); 16-bit on
  a GPU; the compute dtype on a CPU; fp32 master weights wherever the model's own weights train.
- **trained + optimizer**: the trained parameters in fp32 and AdamW's two fp32 moments
  (12 bytes each; 8 when the fp32 weight is already counted above).
- **gradients**: 4 bytes per trained parameter, made during the backward pass as activations
  are freed, so only what exceeds the activations and logits is counted; but the LM head's
  gradient (vocabulary × hidden) is made first, while every activation is still alive.
- **activations**: what autograd keeps for the backward pass, per token and per layer that
  gradients flow through (counted from a Llama layer's saved tensors: the layer's input and
  normalised inputs, the attention's queries, keys, values and output, and four MLP-wide
  tensors); under gradient checkpointing, only each layer's input plus one layer recomputed.
- **logits**: the loss's vocabulary-wide tensors. tuneforge's SFT loss projects only the
  answer tokens, in tiles of at most 4096 tokens × 32768 vocabulary entries; preference and
  distillation losses hold whole fp32 logits; the reward model has none.
- **runtime**: on a CPU the Python process with torch, transformers and TRL loaded; on a
  GPU the CUDA context, outside the recorded peak but inside the card's budget.
- **allocator slack** (CPU): glibc's allocator keeps the blocks of a step's freed tensors,
  so peak RSS exceeds live memory by a share of the activations and logits (and, under
  checkpointing, of the intermediates made and freed again); both shares are measured.
- **loading** (CPU, only where it is the larger peak): while the weights are made, the 16-bit
  checkpoint is mapped into memory too; a short run of a model with a large vocabulary
  (Gemma 3's embeddings are 63% of its weights) peaks there, before its first step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .catalog import (
    LLAMA_STYLE_TARGETS,
    TOWERS,
    Experts,
    GlobalAttention,
    LinearAttention,
    Shape,
    architecture,
    find_spec,
)
from .errors import ModelError
from .methods import method_spec, trains_lora
from .weight_integrity import safetensors_header

GIB = 2**30
QLORA_BYTES_PER_PARAM = 0.52
"""nf4 (4 bits) plus one fp8 scale per 64 weights and the double-quantized scales' scales."""
OPTIMIZER_BYTES_PER_PARAM = 8
"""AdamW's two fp32 moments per trained parameter."""
CPU_RUNTIME_GB = 0.5
"""Peak RSS of a process that has imported torch, transformers, peft and TRL, beyond the weights it loads (measured:
0.47 GiB; 0.51-0.53 GiB with a model loaded and run once)."""
CPU_TRAINER_GB = 0.15
"""What a training process holds beyond that and its plan's terms: the data, the tokenizer and the trainer's state
(bench/plan.py's smallest row, batch 1 × 128 tokens, measured 0.15-0.27 GiB above the plan on the default model
and tiny Qwen3.5 and gpt-oss shapes)."""
GRPO_LOGIT_BYTES = 20
"""Bytes a GRPO step holds per sampled answer token and vocabulary entry (see _logits_bytes)."""
CHECKPOINT_BYTES_PER_PARAM = 2
"""Published checkpoints (and tuneforge's imports of GGUF files) are 16-bit safetensors."""
CPU_ALLOCATOR_SLACK = {
    "glibc": {"adapter": 0.8, "whole": 0.6, "scaling": 0.4, "sampling": 0.35, "recompute": 0.4, "frozen": 0.0},
    "tcmalloc": {"adapter": 0.3, "whole": 0.3, "scaling": 0.2, "sampling": 0.1, "recompute": 0.2, "frozen": 0.2},
}
"""Freed blocks of a step's tensors the allocator keeps: peak RSS exceeds live memory by this share
of a step's activations and logits, measured by bench/plan.py for LoRA-style adapters (whose
backward pass makes an extra input gradient per adapted matrix), whole-weight training and IA3
(scaling vectors; prompt methods, with no adapter inside the layers, are counted with it), and for
GRPO ("sampling": its step samples without gradients, then makes one backward pass over the
answers alone; bench/plan.py's GRPO rows on SmolLM2 keep 0.33-0.37 under glibc, 0.1 under tcmalloc); and,
under gradient checkpointing, by this share ("recompute") of the intermediates every layer still
makes and frees in its forward and recomputed forward; and by this share ("frozen") of those the
untrained layers below freeze's trained ones make and free (tcmalloc keeps them, glibc reuses them)."""
CUDA_CONTEXT_GB = 0.5
"""The CUDA context and kernels; not counted by max_memory_allocated, but taken from the card."""
CUDA_FRAGMENTATION = 0.05
"""The caching allocator reserves this much more than it allocates at the peak."""
HEAD_TOKENS, HEAD_VOCAB = 4096, 32768
"""The tile of the chunked LM head: tokens × vocabulary entries projected at once."""
FIT_MARGIN = 0.85
"""A plan fits when it needs at most this share of the budget."""


@dataclass(frozen=True)
class MemoryEstimate:
    """A plan: named terms in GiB that add up to the peak a run records, a reserve the device
    needs beyond that (CUDA context), and the budget it is compared with."""

    device: str
    parts: tuple[tuple[str, float], ...]
    budget_gb: float
    reserve_gb: float = 0.0

    @property
    def peak_gb(self) -> float:
        """The peak the run should record (max_memory_allocated on a GPU, peak RSS on a CPU)."""
        return sum(gb for _, gb in self.parts)

    @property
    def total_gb(self) -> float:
        """Everything the run takes from the device: the peak plus the reserve."""
        return self.peak_gb + self.reserve_gb

    @property
    def verdict(self) -> str:
        """"fits" (with a 15% margin), "tight" (within the budget) or "too big"."""
        if self.total_gb <= FIT_MARGIN * self.budget_gb:
            return "fits"
        return "tight" if self.total_gb <= self.budget_gb else "too big"

    def as_event(self) -> dict[str, object]:
        """The plan as fields of a `plan` event."""
        return {"device": self.device, "parts": {name: round(gb, 3) for name, gb in self.parts},
                "peak_gb": round(self.peak_gb, 3), "reserve_gb": round(self.reserve_gb, 3),
                "budget_gb": round(self.budget_gb, 3), "verdict": self.verdict}


def model_shape(model: str | Path) -> tuple[float, Shape] | None:
    """Parameters (billions) and dimensions of a catalog model or a local HF folder; None when unknown."""
    spec = find_spec(str(model))
    if spec is not None:
        return spec.params_b, spec.shape
    folder = Path(model).expanduser()
    try:
        whole = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        config = whole.get("text_config", whole)
        shape = _shape_from_config(config)
        towers = 0 if architecture(whole.get("model_type")).language_model_only else tower_parameters(folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError, ModelError):
        return None
    shape = replace(shape, towers_b=towers / 1e9)
    # a multimodal config's own setting is the one transformers follows (Mistral 3's ties unless it says not to)
    tied = whole.get("tie_word_embeddings", config.get("tie_word_embeddings", False))
    head = 0 if tied else shape.vocab * shape.hidden
    return (decoder_parameters(shape) + input_embedding_parameters(shape) + head + towers) / 1e9, shape


def tower_parameters(folder: Path) -> int:
    """Parameters of the vision and audio towers in a checkpoint's safetensors files (read from their headers): a
    multimodal model loads them beside its language model, and its config's text widths do not describe them."""
    total = 0
    for file in folder.glob("*.safetensors"):
        _, tensors = safetensors_header(file)
        total += sum(math.prod(entry["shape"]) for name, entry in tensors.items() if any(tower in name for tower in TOWERS))
    return total


def _shape_from_config(config: dict) -> Shape:
    """The Shape a (text) config.json describes."""
    hidden, layers, vocab = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    heads = config.get("num_attention_heads", 1)
    head_dim = config.get("head_dim") or hidden // heads
    kv_heads = config.get("num_key_value_heads") or heads
    traits = architecture(config.get("model_type"))
    layer_types = config.get("layer_types") or ()
    linear_layers = sum(kind == "linear_attention" for kind in layer_types)
    linear = LinearAttention(linear_layers, config["linear_num_key_heads"], config["linear_num_value_heads"],
                             config["linear_key_head_dim"], config["linear_value_head_dim"],
                             config.get("linear_conv_kernel_dim", 4)) if linear_layers else None
    expert_count = config.get("num_local_experts") or config.get("num_experts")
    experts = Experts(expert_count, config.get("num_experts_per_tok") or config["top_k_experts"],
                      config.get("moe_intermediate_size") or config["intermediate_size"]) if expert_count else None
    shared = config.get("num_kv_shared_layers") or 0
    global_attention = None
    full = [index for index, kind in enumerate(layer_types) if kind == "full_attention"]
    # Gemma 4: full-attention layers with wider heads (and maybe fewer key/value heads), as published (global_head_dim)
    # or as transformers saves it (per_layer_config)
    overrides = (config.get("per_layer_config") or {}).get(str(full[0]), {}) if full else {}
    global_head_dim = config.get("global_head_dim") or overrides.get("head_dim")
    if global_head_dim:
        global_kv_heads = config.get("num_global_key_value_heads") or overrides.get("num_key_value_heads") or kv_heads
        global_attention = GlobalAttention(len(full), sum(index >= layers - shared for index in full), heads * global_head_dim,
                                           global_kv_heads * global_head_dim)
    return Shape(hidden, layers, config.get("intermediate_size", 4 * hidden), vocab, kv_dim=kv_heads * head_dim,
                 q_dim=heads * head_dim, post_norms=traits.post_norms, gated_queries=traits.gated_queries, linear=linear, experts=experts,
                 global_attention=global_attention, kv_shared_layers=shared, wide_shared_mlp=bool(config.get("use_double_wide_mlp")),
                 expanded_kv=traits.expanded_kv, per_layer_input=config.get("hidden_size_per_layer_input") or 0,
                 eager_heads=heads if traits.eager_attention else 0)


def untied_head(params: float, shape: Shape) -> bool:
    """Whether a model of `params` parameters and `shape` has an LM head of its own beside its input embeddings:
    its parameters hold a second vocabulary × hidden matrix beyond the layers and one embedding (Llama 3.1 8B,
    Qwen2.5 7B), where a tied model's do not (SmolLM2, Gemma)."""
    head = shape.vocab * shape.hidden
    return params - shape.towers_b * 1e9 - decoder_parameters(shape) - input_embedding_parameters(shape) > head / 2


def input_embedding_parameters(shape: Shape) -> int:
    """The input embeddings: the vocabulary's, and Gemma 4's per-layer ones (embeddings stay 16-bit under QLoRA)."""
    return shape.vocab * (shape.hidden + shape.layers * shape.per_layer_input)


@dataclass(frozen=True)
class LayerKind:
    """Decoder layers built alike: how many, their linear layers by module name as (in, out), and their parameters
    outside linear layers (a mixture's experts and router, a DeltaNet's convolution)."""

    count: int
    linear: dict[str, tuple[int, int]]
    other: int = 0


def layer_kinds(shape: Shape) -> list[LayerKind]:
    """The decoder's layers grouped by what they hold: attention layers (split where Gemma 4's full-attention layers
    are wider, or its last layers reuse earlier keys and values), and linear-attention layers."""
    h = shape.hidden
    experts, linear, wide = shape.experts, shape.linear, shape.global_attention

    def mlp(shared: bool) -> tuple[dict[str, tuple[int, int]], int]:
        if experts:
            return {}, expert_parameters(shape) // shape.layers
        width = shape.intermediate * (2 if shared and shape.wide_shared_mlp else 1)
        return {"gate_proj": (h, width), "up_proj": (h, width), "down_proj": (width, h)}, 0

    def attention_kind(count: int, q: int, kv: int, shared: bool) -> LayerKind:
        attention = {"q_proj": (h, q * (2 if shape.gated_queries else 1)), "o_proj": (q, h)}
        if not shared:
            attention |= {"k_proj": (h, kv), "v_proj": (h, kv)}
        if shape.per_layer_input:
            attention |= {"per_layer_input_gate": (h, shape.per_layer_input), "per_layer_projection": (shape.per_layer_input, h)}
        feedforward, other = mlp(shared)
        return LayerKind(count, attention | feedforward, other)

    shared = shape.kv_shared_layers
    global_layers, global_shared = (wide.layers, wide.shared) if wide else (0, 0)
    local = shape.attention_layers - global_layers
    kinds = [attention_kind(local - (shared - global_shared), shape.queries, shape.keys, False),
             attention_kind(shared - global_shared, shape.queries, shape.keys, True)]
    if wide:
        kinds += [attention_kind(global_layers - global_shared, wide.q_dim, wide.kv_dim, False),
                  attention_kind(global_shared, wide.q_dim, wide.kv_dim, True)]
    if linear:  # in_proj_qkv, in_proj_z, out_proj; in_proj_a/b (a scalar per value head); the causal convolution
        mixed = 2 * linear.keys + linear.values
        feedforward, other = mlp(False)
        kinds.append(LayerKind(linear.layers, {"in_proj_qkv": (h, mixed), "in_proj_z": (h, linear.values), "out_proj": (linear.values, h),
                                               "in_proj_a": (h, linear.value_heads), "in_proj_b": (h, linear.value_heads), **feedforward},
                               other + mixed * linear.conv_kernel))
    return [kind for kind in kinds if kind.count]


def decoder_parameters(shape: Shape) -> int:
    """Parameters of the decoder's layers (first order: the matrices, and a mixture's router; no norms or biases),
    and Gemma 4's projection of the embeddings into every layer's input."""
    layers = sum(kind.count * (sum(n_in * n_out for n_in, n_out in kind.linear.values()) + kind.other) for kind in layer_kinds(shape))
    return layers + shape.hidden * shape.layers * shape.per_layer_input


def expert_parameters(shape: Shape) -> int:
    """Parameters of a mixture's experts and routers over all layers (0 for a dense MLP): stacked 3-D weights that
    bitsandbytes does not quantize (it replaces linear layers only), so they stay 16-bit under QLoRA."""
    experts = shape.experts
    return shape.layers * experts.count * (3 * shape.hidden * experts.intermediate + shape.hidden) if experts else 0


def layer_parameters(shape: Shape) -> float:
    """Parameters of one decoder layer, on average over the layers' kinds."""
    return decoder_parameters(shape) / shape.layers


def adapted_matrices(shape: Shape, targets: Sequence[str] | None = None) -> list[tuple[int, int]]:
    """(in, out) of each matrix LoRA adapts in the whole decoder: `targets` by module name, None = the attention's and
    MLP's linear layers (a mixture's experts are not linear layers, and its router stays as trained). Phi-3's fused
    qkv_proj and gate_up_proj are counted as the projections they fuse."""
    names = targets or (*LLAMA_STYLE_TARGETS, "in_proj_qkv", "in_proj_z", "out_proj")
    matrices = []
    for kind in layer_kinds(shape):
        dims = dict(kind.linear)
        if "k_proj" in dims:
            dims["qkv_proj"] = (shape.hidden, dims["q_proj"][1] + 2 * dims["k_proj"][1])
        if "gate_proj" in dims:
            dims["gate_up_proj"] = (shape.hidden, 2 * dims["gate_proj"][1])
        matrices += [dims[name] for _ in range(kind.count) for name in names if name in dims]
    return matrices


def lora_parameters(shape: Shape, rank: int, targets: Sequence[str] | None = None) -> int:
    """Trainable parameters of LoRA: r × (in + out) per adapted matrix."""
    return rank * sum(n_in + n_out for n_in, n_out in adapted_matrices(shape, targets))


def trained_parameters(method: str, params: float, shape: Shape, lora_r: int, freeze_layers: int = 2,
                       virtual_tokens: int = 20, lora_targets: Sequence[str] | None = None) -> float:
    """How many parameters `method` trains (first order: attention and MLP matrices, no norms), by what it trains."""
    trains = method_spec(method).trains
    if trains == "all":
        return params
    if trains == "top_layers":
        return min(freeze_layers, shape.layers) * layer_parameters(shape)
    if trains == "ia3":
        return shape.layers * (2 * shape.keys + shape.intermediate)
    if trains == "prefix":
        return shape.layers * 2 * virtual_tokens * shape.keys
    if trains in ("prompt", "ptuning"):
        return virtual_tokens * shape.hidden * (1 if trains == "prompt" else 4)
    return lora_parameters(shape, lora_r, lora_targets)


def activation_bytes_per_token(shape: Shape, method: str, lora_r: int, sixteen_bit: bool,
                               lora_targets: Sequence[str] | None = None, seq_len: int = 0) -> float:
    """Bytes autograd keeps per token for one decoder layer gradients flow through (the average over its kinds).

    Counted with saved-tensor hooks on Llama layers (tests/core/test_plan_families.py checks the count): the
    layer's input and its two normalised inputs (4 × hidden), the rotated queries and the attention output
    (2 × queries), keys and values (2 × kv width), and gate, up, SiLU(gate) and their product (4 × MLP width).
    Gemma's norms of the attention and MLP outputs keep as much again as the input norms (4 × hidden; measured
    by bench/plan.py on Gemma 3's shape). Under 16-bit autocast those are 16-bit, and each pair of RMSNorms adds
    fp32 copies (12 bytes per hidden unit). Then, counted the same way:

    - Qwen3.5's gated attention keeps the query projection's output (queries and gate), the normalised queries
      and keys, the gate's sigmoid and the gated output: 5 × queries + kv width more.
    - A gated-DeltaNet layer (transformers' torch implementation of the chunked delta rule, which runs in fp32
      whatever the compute dtype) keeps its convolution's input and output (2 × (2 keys + values)), the gated
      norm's (5 × values) and, in fp32, twelve copies of the keys repeated to every value head, three of the
      values, five 64 × 64 chunk matrices per value head, and each 64-token chunk's recurrent state.
    - A mixture of experts keeps, per expert a token goes through, its input and six expert-wide tensors, in
      place of the dense MLP's four.
    - An eager attention keeps each head's probabilities over the `seq_len` tokens, in fp32.
    - Gemma 4's attention keeps its queries before their norm, and keys and values repeated to every query head
      (5 × queries + 2 × kv width); its layers that reuse earlier keys and values keep no keys or values of
      their own, and its shared layers' MLPs may be twice as wide.
    """
    h, q, kv = shape.hidden, shape.queries, shape.keys
    norm_pairs = 2 if shape.post_norms else 1
    values = 4 * norm_pairs * h
    always_fp32 = shape.eager_heads * seq_len
    for kind in layer_kinds(shape):
        share, layer = kind.count / shape.layers, kind.linear
        if "o_proj" in layer:  # attention; a layer reusing earlier keys and values keeps none of its own
            queries, keys = layer["o_proj"][0], layer.get("k_proj", (0, 0))[1]
            if shape.expanded_kv:  # queries before and after their norm, keys and values repeated to every head
                values += share * (5 * queries + 2 * keys)
            else:
                values += share * (2 * queries + 2 * keys + (5 * queries + keys if shape.gated_queries else 0))
        if "gate_proj" in layer:
            values += share * 4 * layer["gate_proj"][1]
        if "in_proj_qkv" in layer:
            linear, chunk = shape.linear, 64  # transformers' chunk size for the delta rule
            repeated_keys = linear.value_heads * linear.key_head_dim
            values += share * (2 * (2 * linear.keys + linear.values) + 5 * linear.values)
            always_fp32 += share * (12 * repeated_keys + 3 * linear.values + 5 * chunk * linear.value_heads
                                    + linear.value_heads * linear.key_head_dim * linear.value_head_dim / chunk)
    if shape.experts:
        values += shape.experts.per_token * (h + 6 * shape.experts.intermediate)
    if trains_lora(method):  # each adapter's rank-wide intermediate
        values += len(adapted_matrices(shape, lora_targets)) / shape.layers * lora_r
    if method_spec(method).dora:  # DoRA rescales every adapted projection's output, which it keeps
        values += q + 2 * kv + 2 * h + 2 * shape.intermediate
    if sixteen_bit:
        return 2 * values + 12 * norm_pairs * h + 4 * always_fp32
    return 4 * (values + always_fp32)


def estimate_training_memory(params_b: float, shape: Shape, *, method: str, batch_size: int, seq_len: int,
                             lora_r: int, gradient_checkpointing: bool, on_gpu: bool, budget_gb: float,
                             freeze_layers: int = 2, compute_dtype: str | None = None,
                             answer_share: float = 1.0, teacher_params_b: float | None = None,
                             lora_targets: Sequence[str] | None = None, cpu_allocator: str = "glibc",
                             replay_kl: bool = False, checkpoint_every: int = 1,
                             packed_tokens: int | None = None, load_in_4bit: bool = False) -> MemoryEstimate:
    """The memory one training step of `method` needs at its peak, as a breakdown.

    `seq_len` is the longest batch's length (padding included); `packed_tokens`, for padding-free batches, the
    tokens of the largest micro-batch end to end in its one row (the batch's rows hold no padding); `answer_share` the share of
    its tokens that are trained answers; `compute_dtype` defaults to bf16 on a GPU, fp32 on a CPU;
    `cpu_allocator` (glibc or tcmalloc) sets how much freed memory a CPU process keeps; `replay_kl`, that
    replayed rows also pay a KL term to the base (train/replay_kl.py); `checkpoint_every` n, that checkpointing
    covers every n-th layer only (the others keep their activations); `load_in_4bit`, that a LoRA method's base is 4-bit
    (as qlora's always is).
    """
    spec = method_spec(method)
    params = params_b * 1e9
    sixteen_bit = (compute_dtype or ("bfloat16" if on_gpu else "float32")) != "float32"
    value_bytes = 2 if sixteen_bit else 4
    embeddings = shape.vocab * shape.hidden
    whole = spec.weights == "whole"
    if spec.quantized_base or load_in_4bit:
        # bitsandbytes quantizes the decoder's linear layers; the embeddings, an untied head and a mixture's experts stay 16-bit.
        unquantized = input_embedding_parameters(shape) + (embeddings if untied_head(params, shape) else 0) + expert_parameters(shape)
        weights = max(0.0, params - unquantized) * QLORA_BYTES_PER_PARAM + unquantized * value_bytes
    else:
        weights = params * (4 if whole else value_bytes)

    trained = trained_parameters(method, params, shape, lora_r, freeze_layers, lora_targets=lora_targets)
    # AdamW's two fp32 moments, and the fp32 trained weights where the base weights do not hold them.
    trained_bytes = trained * (OPTIMIZER_BYTES_PER_PARAM + (0 if whole else 4))

    # Preference methods run the chosen and the rejected answer through the model together, KTO each answer and a
    # mismatched one. A padding-free batch is one row of its examples' real tokens, and an eager attention's
    # probabilities span that whole row.
    tokens = (packed_tokens if packed_tokens is not None else batch_size * seq_len) * spec.sequences_per_example
    row = packed_tokens if packed_tokens is not None else seq_len
    per_layer = activation_bytes_per_token(shape, method, lora_r, sixteen_bit, lora_targets, row)
    layers = min(freeze_layers, shape.layers) if spec.trains == "top_layers" else shape.layers
    residual_bytes = 4 if whole or not sixteen_bit else 2
    # A checkpointed layer keeps its input only, and its activations come back one layer at a time in the backward pass.
    checkpointed = checkpointed_layers(layers, checkpoint_every) if gradient_checkpointing else 0
    activations = tokens * (checkpointed * shape.hidden * residual_bytes + (layers - checkpointed) * per_layer
                            + (per_layer if checkpointed else 0))

    logits = _logits_bytes(spec.objective, tokens, answer_share, shape, on_gpu)
    if spec.objective == "distill":  # the teacher's weights and its logits
        weights += (teacher_params_b or params_b) * 1e9 * value_bytes
        logits *= 2
    if replay_kl:  # the replayed rows' logits at their answers, tuned and base (at most the batch's answers)
        logits += 2 * _logits_bytes("distill", tokens * answer_share, answer_share, shape, on_gpu)

    # Gradients fill in during the backward pass while the activations are freed: only what
    # they need beyond the activations and logits raises the peak (full fine-tuning of short examples).
    # The LM head's comes first, from the loss, while all activations are alive.
    head_gradient = embeddings * 4 if spec.trains == "all" else 0.0
    gradients = max(head_gradient, trained * 4 - activations - logits)
    parts = [
        ("base weights", weights / GIB),
        ("LoRA + optimizer" if spec.trains == "lora" else "trained + optimizer", trained_bytes / GIB),
        ("activations", activations / GIB),
        ("logits", logits / GIB),
        *([("gradients", gradients / GIB)] if gradients else []),
    ]
    if on_gpu:
        reserve = CUDA_CONTEXT_GB + CUDA_FRAGMENTATION * sum(gb for _, gb in parts)
        return MemoryEstimate("GPU", tuple(parts), budget_gb, reserve)
    runtime = CPU_RUNTIME_GB + CPU_TRAINER_GB
    parts.append(("runtime", runtime))
    shares = CPU_ALLOCATOR_SLACK[cpu_allocator]
    slack = shares[_kind(method)] * (activations + logits)
    if checkpointed:  # each checkpointed layer's intermediates are still made, freed, and made again
        slack += shares["recompute"] * tokens * checkpointed * per_layer
    slack += shares["frozen"] * tokens * (shape.layers - layers) * per_layer
    parts.append(("allocator slack", slack / GIB))
    # Loading holds the weights being made and the mapped checkpoint at once, before any step.
    loading = (weights + params * CHECKPOINT_BYTES_PER_PARAM) / GIB + runtime
    training = sum(gb for _, gb in parts)
    if loading > training:
        parts.append(("loading", loading - training))
    return MemoryEstimate("CPU", tuple(parts), budget_gb)


def checkpointed_layers(layers: int, every: int = 1) -> int:
    """How many of `layers` decoder layers checkpointing every `every`-th one covers (layers 0, n, 2n, …, as
    transformers picks them)."""
    return -(-layers // max(1, every))


def _kind(method: str) -> str:
    """How a method's step allocates: sampling answers first, or a backward pass through adapters, whole weights, or
    scaling vectors."""
    if method_spec(method).objective == "grpo":
        return "sampling"
    if trains_lora(method):
        return "adapter"
    return "whole" if method_spec(method).weights == "whole" else "scaling"


def _logits_bytes(objective: str, tokens: float, answer_share: float, shape: Shape, on_gpu: bool) -> float:
    """Peak bytes of the loss over the vocabulary for one micro-batch."""
    if objective == "reward":
        return 0.0  # a scalar score per sequence
    if objective == "sft":
        answers = max(1.0, tokens * answer_share)
        tile = min(answers, HEAD_TOKENS) * min(shape.vocab, HEAD_VOCAB)
        # One 16-bit tile on a GPU (Triton folds it in place); on a CPU the tile is folded by
        # torch ops, which hold about five fp32 tile-sized temporaries. Plus fp32 gradients of
        # the projected hidden states.
        return tile * (2 if on_gpu else 20) + answers * shape.hidden * 8
    if objective == "grpo":
        # TRL projects only the sampled answers' positions, for the policy and again for the reference: fp32 logits,
        # the temperature-scaled copy, log-softmax, entropy and gradient. Measured in a training child of the tiny test
        # model (where this term is nearly all of the peak beyond the runtime): 0.50-0.56 GB over 8 × 64 answer tokens
        # of a 49,152 vocabulary, bf16 or fp32 compute alike, about 20 bytes per entry.
        return max(1.0, tokens * answer_share) * shape.vocab * GRPO_LOGIT_BYTES
    # dpo, orpo, simpo, kto, distill: fp32 logits, their log-softmax and its gradient (not measured for kto). Distillation
    # projects only the positions trained in some row of the batch: with prompts of different lengths, up to every one.
    return tokens * shape.vocab * 12


@dataclass(frozen=True)
class PhaseNeeds:
    """RAM and disk a phase after training needs, in GiB."""

    phase: str
    ram_gb: float
    disk_gb: float
    detail: str

    def shortfalls(self, ram_free_gb: float, disk_free_gb: float) -> list[str]:
        """What the phase needs beyond what is free, e.g. ["15.0 GB of RAM (12.1 GB free)"]; empty when it fits."""
        return [f"{need:.1f} GB of {what} ({free:.1f} GB free)"
                for what, need, free in (("RAM", self.ram_gb, ram_free_gb), ("disk", self.disk_gb, disk_free_gb))
                if need > free]


def merge_and_export_needs(params_b: float, quants: tuple[str, ...] = ("q4_k_m",)) -> tuple[PhaseNeeds, PhaseNeeds]:
    """What merge and export need after training: RAM for the models they hold, disk for what they write.

    Merge holds the base in 16-bit while it folds the adapter in, then writes the 16-bit merged
    model. Export writes an f16 GGUF (the source for quantization, removed afterwards unless
    asked for) and each quantized file, then verifies each against the merged model loaded as
    reference (fp32 below 2 GiB of weights, bf16 above) with the GGUF beside it in llama.cpp.
    """
    from tuneforge.exporters.gguf.types import GGUF_TYPES, file_gb

    sixteen = params_b * 1e9 * 2 / GIB
    merge = PhaseNeeds("merge", CPU_RUNTIME_GB + sixteen, sixteen, "the base in 16-bit; the merged model written in 16-bit")
    files = [file_gb(params_b, q if q in GGUF_TYPES else "f16") for q in quants]
    reference = sixteen * (2 if sixteen < 2 else 1)
    disk = sum(files) + (0 if "f16" in quants else sixteen)
    export = PhaseNeeds("export", CPU_RUNTIME_GB + reference + max(files), disk,
                        "the f16 GGUF and each quantized file; the reference model and one GGUF loaded to verify")
    return merge, export
