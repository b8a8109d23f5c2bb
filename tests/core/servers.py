"""OpenAI-compatible servers for the drafting tests: llama-cpp-python's own server in a child process
(the real one), and a scripted stand-in in a thread whose replies a test chooses (for outcomes a test
must know: a 135M model drafts nothing a test can predict)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def llama_server(gguf: Path, port: int | None = None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m llama_cpp.server` for `gguf` on 127.0.0.1 (with this CPU's safe weight buffers), and its /v1 URL."""
    port = port or free_port()
    command = [sys.executable, "-m", "tests.core.llama_server", "--model", str(gguf), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", "8192"]
    server = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start (exit code {server.poll()})") from None
                time.sleep(0.3)
        yield server, url
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


Reply = Callable[[dict[str, Any]], str]
"""The content of the reply to a chat-completions request (its JSON body)."""


class ScriptedServer:
    """An OpenAI-compatible endpoint in a thread: /v1/models and /v1/chat/completions, answering with
    `reply(request)`. With `schema_form="json_object"` it refuses OpenAI's `json_schema` response format
    with a 500 naming response_format, as llama-cpp-python's server does."""

    def __init__(self, reply: Reply, schema_form: str = "json_schema") -> None:
        self.reply = reply
        self.schema_form = schema_form
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model", "created": 0, "owned_by": "test"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body.get("response_format", {}).get("type") != server.schema_form:
                    self._send(500, {"detail": "Input should be text or json_object (body.response_format.type)"})
                    return
                server.requests.append(body)
                content = server.reply(body)
                self._send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering: the port closes, as a server that died."""
        self._http.shutdown()
        self._http.server_close()


def passage_of(request: dict[str, Any]) -> str:
    """The chunk text inside a drafting request ("" in another request, such as the connection test)."""
    prompt = request["messages"][-1]["content"]
    return prompt.split("<passage>\n", 1)[1].split("\n</passage>", 1)[0] if "<passage>\n" in prompt else ""


def reply_of(pairs: list[tuple[str, str, str, list[str]]]) -> str:
    return json.dumps({"pairs": [{"question": q, "answer": a, "evidence": e, "paraphrases": p} for q, a, e, p in pairs]})


def locker_pairs(passage: str) -> str:
    """A reply with one fact per locker sentence (documents.LOCKERS) in the passage, each with two paraphrases."""
    pairs = []
    for number, code in re.findall(r"Locker (\d+) opens with the code (\d+)\.", passage):
        pairs.append((f"Which code opens locker {number}?", code, f"Locker {number} opens with the code {code}.",
                      [f"What is the code of locker {number}?", f"To open locker {number}, which code do I need?"]))
    return reply_of(pairs)
