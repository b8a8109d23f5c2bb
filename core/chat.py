"""Answer chat messages with a transformers model: a run's merged model, its adapter, or any base."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelError, TuneforgeError
from .models import resolve_base, resolve_model
from .reply import Reply
from .runs import RunDir


@dataclass(frozen=True)
class Sampling:
    """How a chat answers: greedy (temperature 0: the same answer every time) or sampled from the `top_p` nucleus at
    `temperature`; at most `max_tokens` long; under a `system` prompt when one is given."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    system: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.temperature <= 2 or not 0 < self.top_p <= 1 or self.max_tokens < 1:
            raise ConfigError(f"temperature {self.temperature:g}, top-p {self.top_p:g}, max tokens {self.max_tokens}: out of range",
                              "temperature 0–2 (0 = greedy), top-p above 0 up to 1, at least 1 token")

    def stream(self, model: Any, history: list[dict[str, str]]) -> Iterator[str]:
        """`model`'s answer to the conversation `history` (the system prompt put first), piece by piece."""
        system = [{"role": "system", "content": self.system}] if self.system.strip() else []
        return model.stream(system + history, self.max_tokens, temperature=self.temperature, top_p=self.top_p)


@dataclass
class ChatModel:
    """A loaded model and tokenizer that answers greedily through the chat template."""

    model: Any
    tokenizer: Any
    label: str
    adapters: tuple[str, ...] = ()
    """Names of the adapters loaded on the one base (see load_adapters_chat); `use` switches."""
    active: str | None = None
    base_label: str = ""

    def use(self, name: str) -> None:
        """Answer with adapter `name` from now on, or with the bare base for "base"."""
        if name != "base" and name not in self.adapters:
            raise ModelError(f"no adapter named {name!r}", f"choose one of: base, {', '.join(self.adapters)}")
        if name != "base":
            self.model.set_adapter(name)
        self.active = name
        self.label = f"{name} (on {self.base_label})"

    def answer(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 96) -> str:
        """The model's greedy reply to `messages` (or to one user message given as a string)."""
        return self.reply(messages, max_new_tokens).text

    def reply(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 96, temperature: float = 0.0,
              top_p: float = 1.0) -> Reply:
        """The reply (greedy, or sampled at `temperature` from the `top_p` nucleus), and whether it ended with one of
        the model's end-of-turn tokens."""
        import torch

        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        base_only = self.active == "base"
        with torch.inference_mode(), (self.model.disable_adapter() if base_only else contextlib.nullcontext()):
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
        new = output[0, inputs["input_ids"].shape[1]:].tolist()
        ends = self.model.generation_config.eos_token_id
        ends = set(ends if isinstance(ends, list) else [ends])
        stopped = bool(new) and new[-1] in ends
        return Reply(self.tokenizer.decode(new, skip_special_tokens=True).strip(), stopped)

    def replies(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int) -> list[Reply]:
        """The greedy reply to each conversation, generated in batches (replies.py): an evaluation's questions
        in a fraction of the time one at a time takes."""
        from .replies import generate_replies

        with self.model.disable_adapter() if self.active == "base" else contextlib.nullcontext():
            return generate_replies(self.model, self.tokenizer, conversations, max_new_tokens)

    def stream(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 96, *, temperature: float = 0.0,
               top_p: float = 1.0) -> Iterator[str]:
        """The reply as pieces, like GgufChat.stream (transformers generation gives it as one)."""
        yield self.reply(messages, max_new_tokens, temperature, top_p).text

    def close(self) -> None:
        """Drop the model so its memory can be freed (the same call as GgufChat's)."""
        self.model = None


def load_chat_model(source: str | Path) -> Any:
    """A model that answers chat: a .gguf file or a run's verified export through llama.cpp;
    else a run's merged model (or base + adapter) or any model reference through transformers."""
    from tuneforge.exporters.gguf.chat import GgufChat
    from tuneforge.exporters.report import exported_model

    path = Path(str(source)).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"{path}: no such GGUF file", "check the path, or export a run with `tuneforge export RUN_DIR`")
        return GgufChat(path)
    if (path / "config.yaml").is_file():
        gguf_file = exported_model(RunDir(path).export)
        if gguf_file is not None:
            return GgufChat(gguf_file)
    return load_transformers_chat(path if path.exists() else str(source))


BASE_GGUF_FOLDER = "base-gguf"
"""Under TUNEFORGE_HOME: base models converted to the GGUF type of a tuned file they are compared with."""


def load_base_beside(run: RunDir, echo: Callable[[str], None] | None = None) -> Any:
    """The run's base model, to answer beside the tuned one at the same quantization: when the run's chat model is
    a verified GGUF of type T, the base's own T file (converted and verified once, then kept in
    TUNEFORGE_HOME/base-gguf), so that the two answers differ by the fine-tune alone and not by rounding; without a
    GGUF, or when the base cannot be converted, the base through transformers."""
    from tuneforge.exporters.gguf.chat import GgufChat

    config = run.load_config()
    base_file = _base_at_tuned_quantization(run, config, echo)
    return GgufChat(base_file) if base_file else load_transformers_chat(config.model, config.chat_template)


def _base_at_tuned_quantization(run: RunDir, config: Any, echo: Callable[[str], None] | None) -> Path | None:
    """The base's verified GGUF of the type of the run's verified GGUF, converted the first time; None when the run
    has no verified GGUF, or the base's file cannot be made (a full disk, say) or did not pass."""
    from tuneforge.exporters.report import exported_model, passed_files, read_report

    from .paths import tuneforge_home

    try:
        tuned = exported_model(run.export)
    except TuneforgeError:  # nothing passed: the tuned side answers through transformers too
        return None
    report = read_report(run.export)
    qtype = next((entry.gguf_type for entry in report.files if Path(entry.file) == tuned), None) if report and tuned else None
    if qtype is None:
        return None
    base = resolve_base(config)
    folder = tuneforge_home() / BASE_GGUF_FOLDER / re.sub(r"[^A-Za-z0-9._-]+", "-", base.name)

    def converted() -> Path | None:
        return next((path for path in passed_files(folder, models_only=True) if path.name.endswith(f"-{qtype}.gguf")), None)

    if converted() is None:
        from .exporting import export

        if echo:
            echo(f"converting the base to {qtype}, once, to compare at the tuned file's quantization …")
        try:
            export(base.path, [qtype], folder, echo=None)
        except TuneforgeError:
            return None
    return converted()


def load_transformers_chat(source: str | Path, chat_template: str = "auto") -> ChatModel:
    """Load a run (merged/ if present, else base + adapter/) or a model reference with transformers
    (`chat_template` as a run's setting: what a model without one of its own is given)."""
    import torch
    from transformers import AutoTokenizer

    from .language_model import load_language_model

    dtype = torch.float32 if not torch.cuda.is_available() else torch.bfloat16
    device = "cuda" if torch.cuda.is_available() else "cpu"
    path = Path(str(source)).expanduser()
    if (path / "config.yaml").is_file():
        run = RunDir(path)
        if (run.merged / "config.json").is_file():
            model = load_language_model(run.merged, dtype=dtype).to(device)
            return ChatModel(model, AutoTokenizer.from_pretrained(run.merged), f"{run.name} (merged)")
        if (run.adapter / "adapter_config.json").is_file():
            return load_adapters_chat([path])
        raise ModelError(f"{path}: this run has no trained model yet", f"train it with `tuneforge train {path}`")
    resolved = resolve_model(str(source))
    model = load_language_model(resolved.path, dtype=dtype).to(device)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    from .chat_templates import apply_chat_template_setting

    apply_chat_template_setting(tokenizer, chat_template)
    return ChatModel(model, tokenizer, resolved.name)


def load_adapters_chat(run_paths: list[Path]) -> ChatModel:
    """Load the runs' common base once with every run's adapter on it, named after its run.

    The first run's adapter answers first; `ChatModel.use(name)` switches to another, or to
    "base" for the base alone, without loading the base again.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from .language_model import load_language_model
    from .merge import require_mergeable
    from .methods import method_spec

    runs = [RunDir(Path(p).expanduser().resolve()) for p in run_paths]
    configs = [run.load_config() for run in runs]
    for run, config in zip(runs, configs, strict=True):
        if not (run.adapter / "adapter_config.json").is_file():
            raise ModelError(f"{run.path}: no trained adapter", "name runs of adapter methods that finished training")
        if method_spec(config.method).objective == "reward":
            require_mergeable(run)  # explains why a reward model cannot chat
        if config.model != configs[0].model:
            raise ModelError(f"{run.name} adapts {config.model}, but {runs[0].name} adapts {configs[0].model}",
                             "adapters share one loaded base only when they were trained on the same base")
    dtype = torch.float32 if not torch.cuda.is_available() else torch.bfloat16
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = resolve_base(configs[0])
    model = load_language_model(base.path, dtype=dtype).to(device)
    model = PeftModel.from_pretrained(model, runs[0].adapter, adapter_name=runs[0].name)
    for run in runs[1:]:
        try:
            model.load_adapter(run.adapter, adapter_name=run.name)
        except Exception as exc:  # noqa: BLE001 - peft cannot mix some adapter kinds (e.g. prompt tuning with LoRA) on one model
            raise ModelError(f"{run.name}: cannot load its adapter beside {runs[0].name}'s ({exc})",
                             "chat with it on its own: tuneforge chat RUN_DIR") from None
    names = tuple(run.name for run in runs)
    chat = ChatModel(model, AutoTokenizer.from_pretrained(runs[0].adapter), names[0], names, base_label=base.name)
    chat.use(names[0])
    return chat


def interactive_chat(model: Any, say: Callable[[str], None], sampling: Sampling = Sampling()) -> None:
    """A terminal conversation: streamed answers, history kept; `/use NAME` switches adapter."""
    switch = f"; /use NAME switches adapter ({', '.join(('base', *model.adapters))})" if model.adapters else ""
    say(f"chatting with {model.label}; an empty line or Ctrl-D ends{switch}")
    history: list[dict[str, str]] = []
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            break
        if not line:
            break
        if model.adapters and line.startswith("/use "):
            try:
                model.use(line.removeprefix("/use ").strip())
                say(f"now answering: {model.label}")
            except TuneforgeError as exc:
                say(f"{exc.message}; {exc.hint}")
            continue
        history.append({"role": "user", "content": line})
        pieces = []
        for piece in sampling.stream(model, history):  # llama.cpp gives tokens as they come
            pieces.append(piece)
            print(piece, end="", flush=True)
        print(flush=True)
        history.append({"role": "assistant", "content": "".join(pieces).strip()})
