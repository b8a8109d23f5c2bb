"""Chat with a GGUF file through llama.cpp (llama-cpp-python), using the chat template inside the file.

llama.cpp runs in a child process (`python -m tuneforge.exporters.gguf.chat GGUF N_CTX`) that
streams the answer back over a pipe, one JSON object a line, so a native crash while answering
is an error naming the file and the signal, not the end of the CLI or the app.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tuneforge.core.errors import ModelError
from tuneforge.core.reply import Reply
from tuneforge.core.weight_integrity import check_gguf

from .native import child_command, describe_crash, open_llama

LOAD_FAILED_HINT = "export it again with `tuneforge export`"


class GgufChat:
    """A GGUF model that answers chat messages greedily (or streams the answer), in a child process."""

    adapters: tuple[str, ...] = ()
    """No switchable adapters: a GGUF holds its fine-tune in its weights (the same attribute as ChatModel's)."""

    def __init__(self, path: Path, n_ctx: int = 4096) -> None:
        self.path = Path(path).expanduser().resolve()
        self.label = self.path.name
        self.n_ctx = n_ctx
        check_gguf(self.path)  # a file cut short would fail inside llama.cpp with no word of why
        self._child: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._finish_reason: str | None = None
        self._start()

    def _start(self) -> None:
        """Start the child and wait until it has loaded the model (or said why it cannot)."""
        self._stderr = tempfile.TemporaryFile()
        # Its own session: Ctrl-C in a terminal chat reaches this process, which ends the child in close().
        self._child = subprocess.Popen(child_command(__name__, str(self.path), str(self.n_ctx)), stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8",
                                       start_new_session=True)
        self._read("loading it")

    def _read(self, doing: str) -> dict[str, Any]:
        """The child's next message; its death (a signal, a silent exit) raises LlamaCrashed naming the file."""
        assert self._child is not None and self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            returncode = self._child.wait()
            said = self._child_output()
            self._forget_child()
            raise describe_crash(returncode, self.path, doing, said)
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            self.close()
            raise ModelError(message["error"], message.get("hint") or LOAD_FAILED_HINT)
        return message

    def _child_output(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", errors="replace")

    def answer(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 256, schema: dict[str, Any] | None = None) -> str:
        """The complete greedy reply; with a JSON `schema`, llama.cpp's grammar holds the reply to it."""
        return "".join(self.stream(messages, max_new_tokens, schema)).strip()

    def reply(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 256) -> Reply:
        """The greedy reply, and whether the model ended it (llama.cpp's finish reason "stop", not "length")."""
        text = self.answer(messages, max_new_tokens)
        return Reply(text, self._finish_reason == "stop")

    def stream(self, messages: list[dict[str, str]] | str, max_new_tokens: int = 256,
               schema: dict[str, Any] | None = None, temperature: float = 0.0, top_p: float = 1.0) -> Iterator[str]:
        """The reply, piece by piece as llama.cpp produces it (a crashed child is started again): greedy, or sampled
        at `temperature` from the `top_p` nucleus (from a fixed seed, so a conversation replays alike)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if self._child is None:
            self._start()
        assert self._child is not None and self._child.stdin is not None
        try:
            self._child.stdin.write(json.dumps({"messages": messages, "max_tokens": max_new_tokens, "schema": schema,
                                                "temperature": temperature, "top_p": top_p}) + "\n")
            self._child.stdin.flush()
        except BrokenPipeError:
            pass  # it died; _read says how
        finished = False
        try:
            while True:
                message = self._read("answering")
                if message.get("end"):
                    finished = True
                    self._finish_reason = message.get("finish_reason")
                    return
                yield message["piece"]
        finally:
            if not finished:  # abandoned mid-answer (or it crashed): the next answer starts a fresh child
                self.close()

    def close(self) -> None:
        """End the child and free llama.cpp's memory now."""
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        self._forget_child()

    def _forget_child(self) -> None:
        self._child = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _serve(path: Path, n_ctx: int) -> None:
    """The child: load the model, then answer each request line with piece lines and an end line."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever native code prints goes to the log, not into the protocol

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    with contextlib.ExitStack() as stack:
        try:
            llm = stack.enter_context(open_llama(path, n_ctx=n_ctx, seed=0))
        except ValueError as exc:
            send({"error": f"{path}: llama.cpp cannot load this GGUF file ({exc})", "hint": LOAD_FAILED_HINT})
            return
        send({"ready": True})
        for line in sys.stdin:
            request = json.loads(line)
            schema = request.get("schema")
            response_format = {"type": "json_object", "schema": schema} if schema else None
            finish_reason = None
            try:
                for chunk in llm.create_chat_completion(messages=request["messages"], max_tokens=request["max_tokens"],
                                                        temperature=request.get("temperature", 0.0),
                                                        top_p=request.get("top_p", 1.0), stream=True,
                                                        response_format=response_format):
                    piece = chunk["choices"][0]["delta"].get("content")
                    finish_reason = chunk["choices"][0].get("finish_reason") or finish_reason
                    if piece:
                        send({"piece": piece})
            except Exception as exc:  # noqa: BLE001 - e.g. a chat template that refuses the conversation
                send({"error": f"{path}: llama.cpp could not answer ({type(exc).__name__}: {exc})",
                      "hint": "check the conversation's roles, or chat with the run through transformers"})
                continue
            send({"end": True, "finish_reason": finish_reason})

if __name__ == "__main__":
    _serve(Path(sys.argv[1]), int(sys.argv[2]))
