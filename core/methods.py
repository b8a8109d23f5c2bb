"""The fine-tuning methods tuneforge offers: what each trains, with which objective, and where its result can go.

One table drives the CLI's `--method` help, the TUI's method list, how the base loads, which peft
configuration wraps it, which trainer runs, what the memory planner counts, and whether merge and GGUF
export accept the result. A method is one entry: the code reads the entry's fields, never its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Objective = Literal["sft", "dpo", "orpo", "simpo", "kto", "grpo", "reward", "distill"]
Trains = Literal["lora", "ia3", "prefix", "ptuning", "prompt", "all", "top_layers"]
Weights = Literal["adapter", "prompt", "whole"]
WEIGHTS_OF: dict[str, Weights] = {"lora": "adapter", "ia3": "adapter", "prefix": "prompt", "ptuning": "prompt", "prompt": "prompt",
                                  "all": "whole", "top_layers": "whole"}


@dataclass(frozen=True)
class MethodSpec:
    """One `--method` choice."""

    name: str
    summary: str
    """One line for `--help` and the UI."""
    objective: Objective
    """What the loss is, and so which trainer runs (train/trainers.py): next-token SFT, a preference loss (DPO,
    ORPO, SimPO), KTO's loss on answers labelled good or bad, GRPO's on sampled answers scored by rewards, a reward
    ranking loss (with a scalar head in place of the LM head), or distillation."""
    trains: Trains
    """What it trains, and so which peft configuration wraps the base and what the planner counts: LoRA adapters,
    IA3 scaling vectors, prefixes, a prompt encoder's or plain virtual tokens, every weight, or the top layers."""
    learning_rate: float
    """Default peak learning rate for a small dataset (each family wants a very different one)."""
    beta: float | None = None
    """A preference loss's strength when `beta` is left open (DPO's and KTO's pull towards the base, ORPO's
    odds-ratio weight, SimPO's reward scale, GRPO's KL to the base); None for the others."""
    quantized_base: bool = False
    """The base loads in 4-bit nf4 (bitsandbytes) under the adapter: QLoRA."""
    dora: bool = False
    """The LoRA adapters learn a magnitude per output too (DoRA)."""

    @property
    def weights(self) -> Weights:
        """Where what it learns lives: an adapter, virtual prompt tokens, or the model's own weights."""
        return WEIGHTS_OF[self.trains]

    @property
    def mergeable(self) -> bool:
        """True when the result can become plain model weights (and so a GGUF)."""
        return self.weights in ("adapter", "whole") and self.objective != "reward"

    @property
    def can_checkpoint(self) -> bool:
        """Whether gradient checkpointing works with it: prefix tuning feeds its prefixes through the
        key/value cache, which checkpointed layers turn off."""
        return self.trains != "prefix"

    @property
    def can_pack(self) -> bool:
        """Whether a micro-batch's examples may run end to end in one row (padding-free): the SFT objectives, whose
        loss is per token; not prompt methods, whose virtual tokens go in front of every row."""
        return self.objective in ("sft", "distill") and self.weights != "prompt"

    @property
    def pairs_data(self) -> bool:
        """True when the method trains on chosen/rejected pairs rather than answers."""
        return self.objective in ("dpo", "orpo", "simpo", "reward")

    @property
    def labelled_data(self) -> bool:
        """True when the method trains on answers labelled good or bad (KTO; pairs count as one of each)."""
        return self.objective == "kto"

    @property
    def samples_answers(self) -> bool:
        """True when it trains on answers it samples itself and rewards (GRPO): its data is prompts, with or
        without reference answers."""
        return self.objective == "grpo"

    @property
    def takes_records(self) -> bool:
        """True when its trainer takes the records themselves (pairs, labelled answers, prompts) and applies the chat
        template; otherwise tuneforge tokenizes and masks the answers it trains on."""
        return self.pairs_data or self.labelled_data or self.samples_answers

    @property
    def prefers_only(self) -> bool:
        """True when its loss only prefers some answers to others (DPO, SimPO, KTO), with no next-token term on the
        answers themselves: it cannot teach a base model to end its turn."""
        return self.objective in ("dpo", "simpo", "kto")

    @property
    def offers_4bit_base(self) -> bool:
        """True when its base can go to 4 bits by `load_in_4bit`: the LoRA methods besides plain SFT LoRA, whose
        4-bit form is the qlora method itself."""
        return self.trains == "lora" and not self.quantized_base and (self.objective != "sft" or self.dora)

    @property
    def sequences_per_example(self) -> int:
        """How many sequences a step runs through the model per example: two for a pair (chosen and rejected) and
        for KTO (the answer, and a mismatched one that estimates the KL term); one otherwise."""
        return 2 if self.pairs_data or self.labelled_data else 1

    @property
    def min_batch(self) -> int:
        """The smallest micro-batch it trains with: KTO's KL term pairs each answer with another row's prompt."""
        return 2 if self.labelled_data else 1


AUTO_METHOD = {"gpu": "qlora", "cpu": "lora"}
"""What `auto` trains with: 4-bit QLoRA on a CUDA GPU, where it saves memory; LoRA on a CPU (see QLORA_ON_CPU)."""
QLORA_ON_CPU = ("QLoRA trains on a CPU too (one process), in less RAM; LoRA is the default there, since a model a CPU "
                "can train fits its RAM at 16 bits, which a 4-bit base only rounds")
"""What the app, the doctor and the docs say about QLoRA without a GPU. Measured with bench/train.py on the built-in
model (2-core Xeon, bf16): QLoRA 514 tokens/s in 1.36 GB, LoRA 524 in 1.67 GB."""


def auto_method(cuda: bool) -> str:
    """The method `auto` means on a machine with (or without) a CUDA GPU."""
    return AUTO_METHOD["gpu" if cuda else "cpu"]


METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("auto", f"{AUTO_METHOD['gpu']} on a CUDA GPU, {AUTO_METHOD['cpu']} on a CPU", "sft", "lora", 1e-3),
    MethodSpec("lora", "low-rank adapters on every linear layer of a 16-bit base (LoRA): facts and style, when the model fits", "sft", "lora", 1e-3),
    MethodSpec("qlora", "LoRA on a 4-bit nf4 base (QLoRA): the least memory, when the 16-bit model does not fit your GPU", "sft", "lora", 1e-3, quantized_base=True),
    MethodSpec("dora", "LoRA with a learned magnitude per output (DoRA): closer to full fine-tuning, when LoRA learns too little", "sft", "lora", 1e-3, dora=True),
    MethodSpec("ia3", "learned rescaling of keys, values and MLP activations (IA3): the fewest parameters, for light changes of style", "sft", "ia3", 2e-2),
    MethodSpec("full", "every weight: most capacity, ~16 bytes per parameter of memory, most forgetting; for large datasets", "sft", "all", 2e-5),
    MethodSpec("freeze", "only the top layers (or parameters matching patterns), the rest frozen: between LoRA and full in cost", "sft", "top_layers", 1e-4),
    MethodSpec("prefix", "learned key/value prefixes in every layer (prefix tuning); no GGUF", "sft", "prefix", 1e-2),
    MethodSpec("ptuning", "virtual input tokens from a small MLP encoder (P-tuning); no GGUF", "sft", "ptuning", 1e-2),
    MethodSpec("prompt", "learned virtual input tokens (prompt tuning); no GGUF", "sft", "prompt", 3e-2),
    MethodSpec("dpo", "prefer chosen over rejected answers against the frozen base (DPO, LoRA): when you have better/worse pairs", "dpo", "lora", 5e-5, 0.1),
    MethodSpec("orpo", "SFT on chosen answers plus an odds-ratio penalty on rejected ones (ORPO, LoRA): pairs, learned and preferred at once", "orpo", "lora", 5e-4, 0.1),
    # SimPO's authors' beta (2.0, with the margin gamma = 0.5 × beta TRL sets); the rate is DPO's for LoRA, untuned.
    MethodSpec("simpo", "prefer chosen over rejected by length-normalised likelihood (SimPO, LoRA): pairs, no reference model, less memory",
               "simpo", "lora", 5e-5, 2.0),
    # KTO's beta as its authors and TRL set it; the rate is DPO's for LoRA, untuned.
    MethodSpec("kto", "learn from answers labelled good or bad one at a time (KTO, LoRA): thumbs up/down feedback, no pairs needed", "kto", "lora",
               5e-5, 0.1),
    # GRPO's KL weight as its paper (DeepSeekMath) set it; TRL's default 0 drops the reference, and with it the pull
    # towards what the base knew. The rate from bench/grpo.py on the built-in model (30 steps of sums, sampled at 0.7):
    # at 2e-4 the training reward rose from 0.04 to 0.54 (mean of the first and last ten steps), at 5e-5 from 0.03 to 0.16.
    MethodSpec("grpo", "sample answers and learn from the ones your rewards score higher (GRPO, LoRA): a checkable answer, "
               "a format, a length; prompts with or without reference answers", "grpo", "lora", 2e-4, 0.04),
    MethodSpec("reward", "a scalar head that scores chosen above rejected (reward model, LoRA): to rank or filter answers; no GGUF", "reward", "lora", 2e-4),
    MethodSpec("distill", "match a teacher model's token distributions (knowledge distillation, LoRA): a larger model's skill in a smaller one", "distill", "lora", 1e-3),
)}
"""Every method, in the order the help and the UI list them."""



def method_spec(name: str) -> MethodSpec:
    """The spec for a method name (names are validated by RunConfig before they get here)."""
    return METHODS[name]


def smaller_base_options(method: str, load_in_4bit: bool = False) -> str:
    """What would shrink `method`'s base in memory, for an out-of-memory hint: 4 bits where it is not yet (--method
    qlora for SFT and for the methods that train no LoRA, --load-in-4bit for the other LoRA methods), a smaller model."""
    spec = method_spec(method)
    if spec.quantized_base or load_in_4bit:
        return "a smaller model"
    option = "--load-in-4bit" if spec.offers_4bit_base else "--method qlora"
    return f"{option}, a smaller model"


def trains_lora(method: str) -> bool:
    """Whether `method`'s adapter is a (possibly DoRA) LoRA: lora_r, lora_alpha and lora_targets apply."""
    return method_spec(method).trains == "lora"


def method_help() -> str:
    """The method list for `--help`: one `name: summary` per line."""
    return "\n".join(f"{spec.name}: {spec.summary}" for spec in METHODS.values())
