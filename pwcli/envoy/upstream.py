"""Mock upstreams for a comparison: HTTP/1.1 servers on loopback (ephemeral ports) that record each
request as it reached them and answer it from the trace. The main upstream answers each stream with
the trace's server packets (the driver says which before sending the stream); a mock cluster answers
the plugin's http calls with the trace's ``upstreams`` entry, in order. HTTP framing through h11."""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11

from .config import LOOPBACK

READ_SIZE = 65536


@dataclass
class Received:
    """A request as it reached an upstream: request line, headers in order, body, trailers."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Answer:
    """What to send back: status, headers, body chunks each after a delay, trailers."""

    status: int
    headers: list[tuple[str, str]]
    chunks: list[tuple[float, bytes]]  # (delay in seconds before it, data)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0  # before the headers


class MockUpstream:
    """``answer_for(request) -> Answer``; ``received`` lists the requests in arrival order."""

    def __init__(self, answer_for: Callable[[Received], Answer]) -> None:
        self.answer_for = answer_for
        self.received: list[Received] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.errors: list[str] = []
        threading.Thread(target=self._accept, daemon=True, name=f"mock-{self.port}").start()

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        h = h11.Connection(h11.SERVER)
        current: Received | None = None
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    data = conn.recv(READ_SIZE)
                    h.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    current = Received(event.method.decode(), event.target.decode(),
                                       [(n.decode().lower(), v.decode())
                                        for n, v in event.headers.raw_items()])
                elif isinstance(event, h11.Data) and current is not None:
                    current.body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage) and current is not None:
                    current.trailers = [(n.decode(), v.decode()) for n, v in event.headers]
                    self.received.append(current)
                    self._answer(conn, h, self.answer_for(current))
                    current = None
                    if h.our_state is h11.MUST_CLOSE:
                        return
                    h.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except (OSError, h11.ProtocolError) as exc:
            if not self.closed:
                self.errors.append(f"mock upstream: {exc}")
        finally:
            conn.close()

    @staticmethod
    def _answer(conn: socket.socket, h: h11.Connection, a: Answer) -> None:
        if a.delay:
            time.sleep(a.delay)  # the trace's delta_ms, in real time: Envoy's clock is real
        headers = list(a.headers)
        names = {n.lower() for n, _ in headers}
        body = b"".join(d for _, d in a.chunks)
        if "content-length" not in names and "transfer-encoding" not in names:
            if len(a.chunks) <= 1 and not a.trailers:
                headers.append(("content-length", str(len(body))))
            else:
                headers.append(("transfer-encoding", "chunked"))
        conn.sendall(h.send(h11.Response(status_code=a.status, headers=headers)))
        for delay, data in a.chunks:
            if delay:
                time.sleep(delay)
            if data:
                conn.sendall(h.send(h11.Data(data=data)))
        conn.sendall(h.send(h11.EndOfMessage(headers=a.trailers)))


class ScriptedUpstream(MockUpstream):
    """The main upstream: answers the requests with the answers the driver queued, in order."""

    def __init__(self) -> None:
        self.queue: deque[Answer] = deque()
        self.lock = threading.Lock()
        super().__init__(self._next)

    def expect(self, answer: Answer) -> None:
        with self.lock:
            self.queue.clear()
            self.queue.append(answer)

    def _next(self, _request: Received) -> Answer:
        with self.lock:
            if self.queue:
                return self.queue.popleft()
        return Answer(502, [("content-type", "text/plain")], [(0, b"no response in the trace")])


def cluster_answers(responses: list[Any]) -> Callable[[Received], Answer]:
    """A mock cluster's answers: the trace's ``upstreams`` entry, one per call (the last
    repeats)."""
    pending = deque(responses)

    def answer(_request: Received) -> Answer:
        r = pending.popleft() if len(pending) > 1 else pending[0]
        body = r.body or b""
        return Answer(r.status, [(n, v) for n, v in r.headers or []], [(0.0, body)],
                      [(n, v) for n, v in r.trailers or []], r.delay_ms / 1000)

    return answer


class TcpUpstream:
    """The mock upstream of TCP traces: each connection Envoy's tcp_proxy opens is handed to the
    driver, which plays the trace's server side on it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def accept(self, timeout: float) -> socket.socket:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        return conn

    def close(self) -> None:
        self.sock.close()
