"""RunConfig: every setting of a run, typed, YAML round-trip, all problems reported at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .methods import METHODS, method_spec
from .rewards import Reward, reward_fields, with_absolute_file

ChatTemplate = Literal["auto", "chatml", "gemma", "gemma4", "llama3", "phi3", "mistral"]
"""Every `chat_template` setting; tuneforge.core.chat_templates holds each (a test keeps the two lists equal)."""
PATH_SETTINGS = ("model", "data", "eval_data", "teacher", "adapter_from")
"""Settings that may name a file or folder; a relative one means relative to where it was typed."""
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".md", ".gguf", ".parquet", ".arrow", ".gz", ".yaml", ".yml")
"""A value ending in one of these is a file even before it exists (so a typo is reported with its full path)."""
SMALL_DATASET = 1000
"""Below this many training examples, early stopping on eval loss is on unless set otherwise, and
stop_when_recalled may be turned on (see settle.py)."""
DEFAULT_PATIENCE = 3
DEFAULT_EVAL_SPLIT = 0.1
"""The share of the data held out for eval loss where `eval_split` is left open and something is held out."""
DEFAULT_EPOCHS = 6
"""Passes over a dataset of SMALL_DATASET examples or more, or over documents and preference pairs."""
REPLAY_RATIO = 1.0
"""Replayed tokens per data token when `replay` is left open for a small dataset of answers (bench/defaults.py)."""
REPLAY_KL = 1.0
"""The weight of the KL term on replayed answers when `replay_kl` is left open and replay is on (bench/defaults.py)."""
SMALL_DATA_MAX_EPOCHS = 30
"""The most passes over a small dataset of answers with stop_when_recalled, which stops once every answer is recalled."""


@dataclass(frozen=True)
class Bounds:
    """The range RunConfig allows a numeric setting, as its Field constraints say."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def admits(self, value: float) -> bool:
        """Whether RunConfig accepts `value` for the setting."""
        return ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))

    def describe(self) -> str:
        """The range in words, e.g. "> 0 and < 1"."""
        limits = (("> ", self.gt), ("≥ ", self.ge), ("< ", self.lt), ("≤ ", self.le))
        return " and ".join(f"{sign}{value:g}" for sign, value in limits if value is not None) or "any number"


def setting_bounds(name: str) -> Bounds:
    """The bounds of RunConfig's setting `name` (empty when it has none)."""
    found = {}
    for constraint in RunConfig.model_fields[name].metadata:
        found.update({key: getattr(constraint, key) for key in ("gt", "ge", "lt", "le") if getattr(constraint, key, None) is not None})
    return Bounds(**found)


class RunConfig(BaseModel):
    """One fine-tuning run, as written to `RUN_DIR/config.yaml`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)

    model: str = "default"
    """Base model: catalog name, hub id, local HF folder, `.gguf` file, or `default`."""
    data: str
    """Training data: a .jsonl/.json/.csv/.tsv (also .gz), .parquet or .arrow file, a saved dataset folder,
    a hub dataset id (owner/name[:config]), or .txt/.md documents (a file or folder) for continued pre-training."""
    data_split: str | None = None
    """The split of a hub dataset (or saved DatasetDict) that trains; None = "train"."""
    eval_data: str | None = None
    """Held-out data in the same shapes; when unset, `eval_split` of `data` is held out."""
    eval_data_split: str | None = None
    """The split of a hub dataset given as eval_data; None = "validation", else "test"."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Renames the file's fields to tuneforge's: {"prompt": "question", "completion": "answer"}."""
    method: str = "auto"  # a name in methods.METHODS (checked below), so that a method is one table entry
    """What is trained, and how; auto = qlora on a CUDA GPU, lora elsewhere."""
    load_in_4bit: bool = False
    """Load the base in 4-bit nf4 under the LoRA adapters of any LoRA method (dpo, orpo, simpo, kto, grpo, reward,
    distill, dora): the QLoRA base, in about a third of the 16-bit base's memory. `qlora` is lora with it on."""
    epochs: float | None = Field(None, gt=0)
    """Passes over the training data; None = 6, or up to 30 where training stops once recalled (stop_when_recalled)."""
    learning_rate: float | None = Field(None, gt=0, lt=1)
    """Peak learning rate; None = the method's default (LoRA 1e-3, full 2e-5, prompt tuning 3e-2, DPO 5e-5, …)."""
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    """How the learning rate moves after warmup; cosine decays it smoothly to zero."""
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    """Share of steps spent ramping the learning rate up from zero."""
    weight_decay: float = Field(0.0, ge=0)
    """L2 pull of the adapter weights towards zero; 0 is usual for LoRA."""
    max_length: int = Field(512, ge=16)
    """Longest example in tokens; longer ones are truncated (reported by `data check`)."""
    batch_size: int = Field(8, ge=1)
    """Examples per forward pass; memory grows with it."""
    grad_accum: int = Field(1, ge=1)
    """Forward passes per optimizer step: a larger effective batch without more memory."""
    lora_r: int = Field(16, ge=1)
    """LoRA rank: capacity of the adapter; 8–64 covers most uses."""
    lora_alpha: int = Field(32, ge=1)
    """LoRA scale; the update is multiplied by alpha / r (2 × r is a common choice)."""
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the adapter's input; helps against overfitting on larger datasets."""
    lora_targets: list[str] | None = None
    """Module names LoRA adapts; None = every linear layer of the architecture."""
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass (less memory; for adapters up to half again the step's matmul work);
    None = only when the memory plan needs it."""
    checkpoint_every: int | None = Field(None, ge=1)
    """With gradient checkpointing, recompute every n-th decoder layer only (1 = every layer, the least memory; 2 = half
    of them, …); None = 1, or the sparsest that fits when auto-fit turns checkpointing on."""
    padding_free: bool | None = None
    """Run a micro-batch's examples end to end in one row, each attending to itself only, instead of padding every one
    to the longest (no compute spent on padding); None = on a GPU, for SFT and distillation without replay_kl."""
    processes: int = Field(1, ge=1)
    """Training processes on each machine: one per GPU (`--gpus N`), or CPU processes (`--processes N`);
    they split every step's batches (data parallel), so the global batch is batch_size × grad_accum × processes × nodes."""
    nodes: int = Field(1, ge=1)
    """Machines training together (`--nodes M`); each runs `processes` processes."""
    auto_fit: bool = True
    """Fit the run into free memory: lower batch_size (raising grad_accum, so the effective batch stays),
    turn on checkpointing, and only then cut max_length, as the memory plan needs; off = train as configured."""
    eval_split: float | None = Field(None, ge=0, lt=1)
    """Fraction of `data` held out for eval loss when `eval_data` is unset (0 = none); None = none for a dataset of
    answers under 1,000 examples trained by SFT (each is something to learn, and training stops once they are
    recalled), else 0.1."""
    eval_steps: int | None = Field(None, ge=1)
    """Evaluate every N steps; None = once per epoch."""
    save_steps: int | None = Field(None, ge=1)
    """Checkpoint every N steps; None = once per epoch. Ctrl-C always checkpoints."""
    save_total_limit: int = Field(2, ge=1)
    """Checkpoints kept on disk; older ones are deleted."""
    early_stopping_patience: int | None = Field(None, ge=0)
    """Stop after this many evaluations without a better eval loss, and keep the best checkpoint; 0 = off;
    None = 3 for datasets under 1,000 examples with eval data (off with stop_when_recalled)."""
    stop_when_recalled: bool | None = None
    """Datasets under 1,000 examples of answers: train up to 30 epochs, stopping at the end of the first epoch after
    which every training answer comes back word for word (greedy, checked on up to 256 examples); None = on where
    replay_kl holds the model to its base (without it, training that long forgets: bench/defaults.py), else off."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps (overrides epochs)."""
    freeze_layers: int = Field(2, ge=0)
    """freeze: how many of the top decoder layers train (0 = only `freeze_patterns`)."""
    freeze_patterns: list[str] = Field(default_factory=list)
    """freeze: parameter-name patterns that also train, e.g. `*.mlp.*` or `model.norm.*` (shell-style)."""
    virtual_tokens: int = Field(20, ge=1)
    """prefix, ptuning, prompt: how many learned virtual tokens are put before every input."""
    beta: float | None = Field(None, gt=0)
    """dpo: how far the model may move from the base (lower = further); orpo: weight of the odds-ratio term; simpo:
    the reward's scale. None = the method's (0.1 for dpo and orpo, 2.0 for simpo)."""
    teacher: str | None = None
    """distill: the teacher model (catalog name, hub id, folder, .gguf, or a trained run directory)."""
    distill_temperature: float = Field(2.0, gt=0)
    """distill: softens both distributions before the KL; 1–4 is usual."""
    distill_weight: float = Field(0.5, ge=0, le=1)
    """distill: share of the loss that is KL to the teacher; the rest is cross-entropy on the answers."""
    distill_generate: bool = False
    """distill: train on the teacher's own greedy answers to the prompts instead of the dataset's answers."""
    distill_general: int = Field(0, ge=0)
    """distill: also learn the teacher's answers to this many of tuneforge's 60 general chat prompts, so the
    student keeps the teacher's general chat while it learns the data (0 = off; `tuneforge shrink` heals with all 60)."""
    rewards: list[Reward] = Field(default_factory=list)
    """grpo: what the sampled answers are rewarded for, each `[WEIGHT*]KIND[:ARGUMENT]`: exact, contains,
    numeric[:TOLERANCE], regex:PATTERN, json[:SCHEMA], length:MIN-MAX, ends_turn, code:FILE[:FUNCTION], judge:GENERATOR
    (core/rewards.py). Empty = contains and ends_turn."""
    allow_code: bool = False
    """grpo: run the Python file a `code:` reward names. It is code: off unless you trust the file."""
    num_generations: int = Field(4, ge=2)
    """grpo: answers sampled for each prompt; each is rewarded against the others of its group."""
    max_completion_length: int = Field(96, ge=8)
    """grpo: the most tokens a sampled answer may have (an answer cut there has not ended its turn)."""
    sample_temperature: float = Field(0.7, gt=0, le=2)
    """grpo: how freely answers are sampled; 1 is the model's own distribution, where a small model's answers turn to
    noise that no reward can tell apart (bench/grpo.py); lower varies less."""
    replay: float | None = Field(None, ge=0)
    """Replay: the base model's own answers to tuneforge's general chat prompts and everyday questions train beside
    the data, this many tokens of them for every token of the data, so it keeps what it knew (answers that do not
    end their turn are left out); None = 1 for a dataset of answers under 1,000 examples, else 0 (off). SFT methods only."""
    replay_kl: float | None = Field(None, ge=0)
    """Weight of a KL term that holds the tuned model's token distributions on the replayed answers to the base's
    (the same model with its adapter off); 0 = the replayed answers train as plain answers; None = 1 wherever
    replay is on for an adapter method trained in one process, else 0."""
    adapter_from: str | None = None
    """Continue training an existing adapter of the same base: a run directory or an adapter folder."""
    chat_template: ChatTemplate = "auto"
    """The chat format: auto = the model's own template, or, for a base model without one, its family's
    (Gemma, Llama 3, ChatML, Phi-3, else Mistral's [INST]); or name one of those."""
    train_reasoning: bool = True
    """Train assistant turns' reasoning traces (reasoning_content, <think>…</think>) where the chat template shows them;
    off = they stay in the input as context and only the answers are learned."""
    forgetting_probe: bool = True
    """Measure forgetting: ask the base and the tuned model about a hundred everyday questions (how many right answers
    were kept; a chat model, not a base model given its family's template), and their perplexity on a small general-text set."""
    report_to: list[Literal["tensorboard", "trackio", "wandb", "mlflow"]] = []
    """Experiment trackers the run logs to (loss, learning rate, memory, speed, forgetting); TensorBoard and trackio
    write into the run folder. Empty: none. `pip install 'tuneforge[tracking]'`."""
    seed: int = 42
    """Seed of the data order, split and adapter initialisation: the same seed gives the same run."""
    trust_remote_code: bool = False
    """Run code shipped inside a model folder; off unless you trust its author."""
    allow_pickle: bool = False
    """Load pickle weights (.bin/.pt), which can run code when loaded, from a model without safetensors; off unless you trust the files."""

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"Input should be one of {', '.join(METHODS)}")
        return method

    @field_validator("rewards", mode="before")
    @classmethod
    def _written_rewards(cls, rewards: Any) -> Any:
        return [reward_fields(reward) for reward in rewards] if isinstance(rewards, list) else rewards

    @model_validator(mode="after")
    def _check_combinations(self) -> RunConfig:
        if self.early_stopping_patience and self.eval_split == 0 and not self.eval_data:
            raise ValueError("early_stopping_patience needs eval data: set eval_split > 0 or eval_data")
        distills = method_spec(self.method).objective == "distill"
        if distills and not self.teacher:
            raise ValueError(f"method {self.method} needs a teacher: set teacher (--teacher M)")
        if self.teacher and not distills:
            raise ValueError(f"teacher is only used by method distill, not {self.method}")
        if self.replay and method_spec(self.method).objective != "sft":
            raise ValueError(f"replay trains the base's own answers beside SFT data; method {self.method} does not use it "
                             "(distill keeps general chat with distill_general)")
        if self.replay_kl and (method_spec(self.method).weights != "adapter" or self.processes * self.nodes > 1):
            raise ValueError(f"replay_kl compares the model with its adapter off: it needs an adapter method trained in one "
                             f"process, not {self.method}" + (f" in {self.processes * self.nodes}" if self.processes * self.nodes > 1 else ""))
        if self.distill_general and not distills:
            raise ValueError(f"distill_general is only used by method distill, not {self.method}")
        if self.gradient_checkpointing and not method_spec(self.method).can_checkpoint:
            raise ValueError(f"{self.method} cannot use gradient_checkpointing: {method_spec(self.method).name} tuning's prefixes "
                             "live in the key/value cache that checkpointing turns off")
        if self.padding_free and not (method_spec(self.method).can_pack and not self.replay_kl):
            raise ValueError(f"padding_free runs examples end to end in one row: it needs SFT or distillation without replay_kl "
                             f"(which compares rows) and not a prompt method, not {self.method}"
                             + (f" with replay_kl {self.replay_kl:g}" if self.replay_kl else ""))
        if self.batch_size < method_spec(self.method).min_batch:
            raise ValueError(f"method {self.method} needs batch_size {method_spec(self.method).min_batch} or more: its KL "
                             "estimate pairs each answer with another row's prompt in the same micro-batch")
        samples = method_spec(self.method).samples_answers
        if (self.rewards or self.allow_code) and not samples:
            raise ValueError(f"rewards and allow_code are used by method grpo, not {self.method}")
        if samples and (self.batch_size * self.grad_accum) % self.num_generations:
            raise ValueError(f"grpo rewards each answer against the {self.num_generations} of its group: batch_size × grad_accum "
                             f"({self.batch_size} × {self.grad_accum}) must be a multiple of num_generations")
        if self.load_in_4bit and method_spec(self.method).trains != "lora":
            raise ValueError(f"load_in_4bit puts a 4-bit base under LoRA adapters; method {self.method} does not train LoRA")
        if self.adapter_from and method_spec(self.method).weights == "whole":
            raise ValueError(f"adapter_from continues an adapter; method {self.method} trains the model's own weights")
        return self

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> RunConfig:
        """Validate `values`; a ConfigError lists every problem, not just the first."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source), "fix the values above; `tuneforge train --help` lists them") from None

    @classmethod
    def from_yaml(cls, path: Path) -> RunConfig:
        """Read and validate a config.yaml (relative paths in it are relative to its folder); errors name the file."""
        return cls.from_dict(absolute_paths(read_yaml_settings(path), Path(path).parent), source=str(path))

    def to_yaml(self) -> str:
        """The config as YAML, every field written out so the file documents the run."""
        import yaml

        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def with_absolute_paths(self, base: Path) -> RunConfig:
        """A copy whose relative file and folder settings (and reward files) are made absolute against `base`."""
        return RunConfig.from_dict({**self.model_dump(), **absolute_paths({name: getattr(self, name) for name in PATH_SETTINGS}
                                                                          | {"rewards": self.model_dump()["rewards"]}, base)})

    def with_updates(self, **changes: Any) -> RunConfig:
        """A validated copy with some fields changed."""
        return RunConfig.from_dict({**self.model_dump(), **changes})


def absolute_paths(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """`values` with each PATH_SETTINGS entry that names a local file or folder made absolute against `base`
    (the folder the person typed it in, or the folder of the YAML file that holds it). Catalog names,
    hub ids and `default` are left as they are."""
    resolved = dict(values)
    for name in PATH_SETTINGS:
        value = resolved.get(name)
        if isinstance(value, str) and _names_a_path(value, base):
            resolved[name] = str((Path(base) / Path(value).expanduser()).resolve())
    if isinstance(resolved.get("rewards"), list):
        resolved["rewards"] = [with_absolute_file(reward, Path(base)) for reward in resolved["rewards"]]
    return resolved


def _names_a_path(value: str, base: Path) -> bool:
    if value in ("", "-", "default"):
        return False
    path = Path(value).expanduser()
    return (path.is_absolute() or value.startswith((".", "~")) or path.suffix.lower() in FILE_SUFFIXES
            or (Path(base) / path).exists())


def read_yaml_settings(path: Path) -> dict[str, Any]:
    """The settings in a YAML file, unvalidated (command-line options may still complete them)."""
    import yaml

    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", "check the path to the run directory or config") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})", "fix the file's syntax") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings", "see `tuneforge train --help`")
    return values


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(config)"
        message = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
