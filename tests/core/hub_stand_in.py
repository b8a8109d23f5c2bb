"""A stand-in for the Hugging Face hub on this machine: the API and file routes snapshot_download uses, serving a
local folder, and the routes an upload takes, receiving into one, so the real hub library downloads and uploads
through its own code (no network in tests)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _handler(folder: Path) -> type[BaseHTTPRequestHandler]:
    files = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str], with_body: bool = True) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._route(with_body=True)

        def do_HEAD(self) -> None:
            self._route(with_body=False)

        def _route(self, with_body: bool) -> None:
            path = self.path.split("?")[0]
            if path.startswith("/api/models/") and "/tree/" in path:  # the repository's file list, with sizes
                listing = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                           for name, data in files.items()]
                return self._send(200, json.dumps(listing).encode(), {"Content-Type": "application/json"})
            if path.startswith("/api/models/"):  # the repository at a revision
                info = {"id": "org/model", "sha": COMMIT, "siblings": [{"rfilename": name} for name in files]}
                return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
            name = path.rsplit("/", 1)[-1]
            if "/resolve/" not in path or name not in files:
                return self._send(404, b"", {})
            data = files[name]
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if with_body and self.headers.get("Range") else 0
            headers = {"ETag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Repo-Commit": COMMIT}
            return self._send(206 if start else 200, data[start:], headers, with_body)

    return Hub


@contextmanager
def _running(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """The address of a local server answering with `handler`, while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving(folder: Path) -> Iterator[str]:
    """The hub's address while it serves `folder`'s files as every repository's."""
    with _running(_handler(folder)) as address:
        yield address


def _receiver(folder: Path, refuse: int | None) -> type[BaseHTTPRequestHandler]:
    """The routes an upload takes (create the repository, check the card's metadata, ask how to send each file,
    commit): every file is sent
    as a regular one, written under `folder/OWNER/NAME`; with `refuse`, every request answers that status."""

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _json(self, status: int, value: object) -> None:
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = self.path.split("?")[0]
            if refuse:
                self._json(refuse, {"error": "refused by the stand-in"})
            elif path == "/api/repos/create":
                request = json.loads(body)
                name = f"{request.get('organization') or 'me'}/{request['name']}"
                self._json(200, {"url": f"http://{self.headers['Host']}/{name}", "name": name})
            elif path == "/api/validate-yaml":  # the library has a README's metadata checked before it is committed
                self._json(200, {"warnings": []})
            elif "/preupload/" in path:
                files = json.loads(body)["files"]
                self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
            elif "/commit/" in path:
                repo = path.removeprefix("/api/models/").split("/commit/")[0]
                for line in body.decode().splitlines():
                    entry = json.loads(line)
                    if entry["key"] == "file":
                        target = folder / repo / entry["value"]["path"]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(base64.b64decode(entry["value"]["content"]))
                self._json(200, {"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{COMMIT}", "commitOid": COMMIT,
                                 "pullRequestUrl": None})
            else:
                self._json(404, {"error": f"no route {path}"})

    return Hub


@contextmanager
def receiving(folder: Path, refuse: int | None = None) -> Iterator[str]:
    """The hub's address while it takes uploads into `folder` (or refuses each with status `refuse`)."""
    with _running(_receiver(folder, refuse)) as address:
        yield address
