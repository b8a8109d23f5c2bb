"""The model that drafts pairs for `tuneforge data prepare --generator SPEC`, behind one small interface.

SPEC is one of:

- `default`: the built-in SmolLM2-135M's GGUF, which drafts little that passes the gates (DEFAULT_NOTE) but is
  always at hand;
- a `.gguf` file: run by llama.cpp in a child process (a native crash is an error, not the end of
  the app), its reply held to the JSON schema by llama.cpp's grammar;
- `ollama:NAME`: a model of the Ollama on this machine (OLLAMA_HOST, else localhost:11434), through
  its OpenAI-compatible endpoint;
- an `http(s)://…/v1` URL of any OpenAI-compatible server (llama-server, LM Studio, vLLM), with
  `#MODEL` on the end to pick one of its models (else the first it lists). The key, if the server
  wants one, comes from TUNEFORGE_GENERATOR_API_KEY or OPENAI_API_KEY, never from a file.

Every generator answers `reply(messages, schema, max_tokens)` with the reply's text. Servers are
asked for the schema the OpenAI way (`json_schema`); one that refuses it (llama-cpp-python's own
server takes `json_object` with a schema) is asked its way instead. Whatever comes back is parsed
and checked by the caller, so a server that ignores the schema costs drops, not a crash.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..errors import GeneratorError, TuneforgeError

KEY_VARIABLES = ("TUNEFORGE_GENERATOR_API_KEY", "OPENAI_API_KEY")
OLLAMA_DEFAULT = "http://localhost:11434"
REQUEST_TIMEOUT_S = 600.0
"""One reply may take minutes from a large model on a CPU; a server silent for longer is taken as gone."""
GGUF_CONTEXT = 8192
"""The prompt with a chunk of up to 3,000 tokens, and the longest reply (draft_prompts.MAX_REPLY_TOKENS), fit."""
SPEC_HINT = ("pass {option} default, a .gguf file, ollama:NAME, or an OpenAI-compatible URL such as "
             "http://127.0.0.1:8080/v1")
DEFAULT_SPEC = "default"
DEFAULT_NOTE = ("the built-in SmolLM2-135M drafts pairs that the quality gates mostly drop (it is too small to ask good "
                "questions of a text): a 3-8B instruct model drafts well")
"""What is said whenever the built-in model drafts."""


class Generator(Protocol):
    """A model that drafts: its reply to a chat, held to a JSON schema where it can be."""

    label: str
    """What the person passed, for messages and the report."""
    identity: str
    """What its replies depend on: the model, not where it is served (a restarted server on another
    port still answers from the same cache of drafts)."""

    def reply(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> str:
        """The reply's text; raises GeneratorError when the model cannot answer at all."""
        ...

    def close(self) -> None:
        """Free what the generator holds (a child process, connections)."""
        ...


def read_json_reply(text: str) -> Any:
    """The JSON value in a generator's reply: unwrapped from a Markdown code fence (servers that ignore
    the schema often add one), raw newlines inside strings allowed (llama.cpp's grammar lets them
    through). ValueError when the reply is not JSON."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return json.loads(text, strict=False)


def open_generator(spec: str, option: str = "--generator") -> Generator:
    """The generator SPEC names (see the module docstring). A wrong path, a GGUF llama.cpp cannot load, or
    a server that cannot be reached when it must list its models is a GeneratorError here (naming the
    command-line `option` it came from), before any drafting; anything else wrong with a server shows at
    its first reply (or in `probe`)."""
    spec = spec.strip()
    if spec == DEFAULT_SPEC:
        from ..models import default_gguf_path

        return GgufGenerator(default_gguf_path(), label=DEFAULT_SPEC)
    if spec.startswith("ollama:"):
        name = spec.removeprefix("ollama:")
        if not name:
            raise GeneratorError(f"{option} {spec}: no model named", f"for example {option} ollama:qwen2.5:7b-instruct")
        host = os.environ.get("OLLAMA_HOST", OLLAMA_DEFAULT)
        host = host if "://" in host else f"http://{host}"
        return OpenAICompatible(spec, f"{host.rstrip('/')}/v1", name)
    if spec.startswith(("http://", "https://")):
        url, _, model = spec.partition("#")
        return OpenAICompatible(spec, url.rstrip("/"), model or None)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise GeneratorError(f"{option} {spec}: no such file", SPEC_HINT.format(option=option))
        return GgufGenerator(path)
    raise GeneratorError(f"{option} {spec}: not default, a .gguf file, ollama:NAME or http(s) URL", SPEC_HINT.format(option=option))


def generator_note(spec: str) -> str | None:
    """A warning to give before drafting with `spec`, or None."""
    return DEFAULT_NOTE if spec.strip() == DEFAULT_SPEC else None


class GgufGenerator:
    """A GGUF file drafting in llama.cpp's child process (the chat child of the GGUF exporter)."""

    def __init__(self, path: Path, label: str | None = None) -> None:
        from tuneforge.exporters.gguf.chat import GgufChat

        self.label = label or str(path)
        self.identity = f"gguf:{path.resolve()}"
        try:
            self._chat = GgufChat(path, n_ctx=GGUF_CONTEXT)
        except TuneforgeError as exc:
            raise GeneratorError(exc.message, exc.hint) from None

    def reply(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> str:
        """llama.cpp's greedy reply under the schema's grammar; its crash is a GeneratorError."""
        try:
            return self._chat.answer(messages, max_tokens, schema)
        except TuneforgeError as exc:
            raise GeneratorError(exc.message, exc.hint or "run the same command again to continue") from None

    def close(self) -> None:
        """End the llama.cpp child."""
        self._chat.close()


class OpenAICompatible:
    """A model behind an OpenAI-compatible chat endpoint, through the `openai` client."""

    def __init__(self, label: str, base_url: str, model: str | None) -> None:
        import openai

        self.label = label
        self.base_url = base_url
        key = next((os.environ[name] for name in KEY_VARIABLES if os.environ.get(name)), "not-needed")
        # One retry: a server that is down stays down, and a person is waiting for the message.
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=REQUEST_TIMEOUT_S, max_retries=1)
        self._schema_style = "json_schema"
        self.model = model or self._first_model()
        self.identity = f"model:{self.model}"

    def _first_model(self) -> str:
        """The first model the server lists: servers of one model (llama-server, LM Studio) need no name."""
        try:
            listed = [model.id for model in self._client.models.list()]
        except Exception as exc:  # noqa: BLE001 - every client failure becomes one message with a hint
            raise self._unreachable(exc) from None
        if not listed:
            raise GeneratorError(f"{self.base_url}: the server lists no models", f"load a model in it, or name one: {self.base_url}#MODEL")
        return listed[0]

    def reply(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> str:
        """The server's reply, asked for under the schema (in the form this server accepts)."""
        import openai

        try:
            return self._create(messages, schema, max_tokens)
        except openai.APIStatusError as exc:
            if self._schema_style != "json_schema" or not _refuses_schema_form(exc):
                raise self._unreachable(exc) from None
            self._schema_style = "json_object"  # llama-cpp-python's server knows only this form (and says so with a 500)
        except Exception as exc:  # noqa: BLE001 - every client failure becomes one message with a hint
            raise self._unreachable(exc) from None
        return self.reply(messages, schema, max_tokens)

    def _create(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int) -> str:
        if self._schema_style == "json_schema":
            response_format: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
        else:
            response_format = {"type": "json_object", "schema": schema}
        completion = self._client.chat.completions.create(model=self.model, messages=messages, temperature=0.0,  # type: ignore[arg-type]
                                                          max_tokens=max_tokens, response_format=response_format)  # type: ignore[arg-type]
        return completion.choices[0].message.content or ""

    def _unreachable(self, exc: Exception) -> GeneratorError:
        """The error for a server that cannot be reached, timed out, refused the key or does not know the model."""
        import openai

        where = f"{self.label}"
        if isinstance(exc, openai.APITimeoutError):
            return GeneratorError(f"{where}: no reply within {REQUEST_TIMEOUT_S:.0f} s",
                                  "the model may be too large for this machine; run the same command again")
        if isinstance(exc, openai.APIConnectionError):
            host = urlsplit(self.base_url).netloc
            return GeneratorError(f"{where}: cannot connect to {host}",
                                  "start the server (for Ollama: `ollama serve`) and run the same command again")
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return GeneratorError(f"{where}: the server refused the key", f"set {KEY_VARIABLES[0]} to a key it accepts")
        if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
            return GeneratorError(f"{where}: the server refused the request ({exc})",
                                  "it may not support JSON replies; use llama-server, Ollama, LM Studio or vLLM")
        if isinstance(exc, openai.NotFoundError):
            return GeneratorError(f"{where}: the server does not know model {getattr(self, 'model', '?')!r} or the URL's path",
                                  "check the model's name (for Ollama: `ollama list`) and that the URL ends in /v1")
        return GeneratorError(f"{where}: the server failed ({type(exc).__name__}: {exc})", "check the server's own log")

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


def _refuses_schema_form(exc: Exception) -> bool:
    """Whether a server's error is about the `json_schema` response format (a 400 or 422, or a 500 that names it)."""
    import openai

    said = f"{exc} {getattr(exc, 'body', '')}"
    return isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError) or "response_format" in said


PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def probe(generator: Generator) -> float:
    """Seconds the generator took to answer a one-word request under a schema: the app's connection test."""
    started = time.perf_counter()
    generator.reply([{"role": "user", "content": 'Reply with {"ok": true}.'}], PROBE_SCHEMA, 16)
    return time.perf_counter() - started
