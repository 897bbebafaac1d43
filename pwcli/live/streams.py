"""Live streams: what the client sent and got (the front relay) paired with what the upstream got
and answered (the relay behind Envoy), and the recording made of them.

Pairing: Envoy gives each request an ``x-request-id`` (or keeps the client's), sends it upstream,
and, asked by the configuration (``always_set_request_id_in_response``), echoes it in the response
to the client. A client's response thus names the upstream exchange it came from. A response
without an upstream exchange is Envoy's own: a local reply of the plugin, or Envoy's 503 when the
upstream cannot be reached.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..traffic.convert import payload, with_delays
from ..traffic.tcp import addressed
from .recorder import HttpTap, Message

# Headers Envoy itself adds or rewrites on the way (not the plugin's doing): left out of the
# changes shown for a stream.
ENVOY_REQUEST_HEADERS = {"x-forwarded-proto", "x-request-id", "x-envoy-expected-rq-timeout-ms",
                         "content-length", "transfer-encoding", "connection", "keep-alive"}
ENVOY_RESPONSE_HEADERS = {"x-envoy-upstream-service-time", "x-request-id", "date", "server",
                          "content-length", "transfer-encoding", "connection", "keep-alive"}
UNREACHABLE = (b"upstream connect error", b"no healthy upstream")


@dataclass
class LiveStream:
    number: int
    request: Message  # as the client sent it
    response: Message  # as the client got it
    upstream_request: Message | None  # as the upstream got it (None: it never went there)
    upstream_response: Message | None

    @property
    def origin(self) -> str:
        """Who answered: ``upstream``, ``local reply``, or ``envoy`` (upstream unreachable)."""
        if self.upstream_response is not None:
            return "upstream"
        return "envoy" if self.response.body.startswith(UNREACHABLE) else "local reply"

    def request_changes(self) -> list[tuple[str, str, str | None, str | None]]:
        if self.upstream_request is None:
            return []
        return changes(self.request.headers, self.upstream_request.headers, ENVOY_REQUEST_HEADERS)

    def response_changes(self) -> list[tuple[str, str, str | None, str | None]]:
        if self.upstream_response is None:
            return []
        return changes(self.upstream_response.headers, self.response.headers,
                       ENVOY_RESPONSE_HEADERS)


def changes(before: list[tuple[str, str]], after: list[tuple[str, str]],
            ignore: set[str]) -> list[tuple[str, str, str | None, str | None]]:
    """(op, name, before, after): added, removed and replaced headers, in the order of ``after``
    then of ``before``; the names in ``ignore`` left out."""
    b = {n: v for n, v in before if n not in ignore and n != "host"}
    a = {n: v for n, v in after if n not in ignore and n != "host"}
    out: list[tuple[str, str, str | None, str | None]] = []
    for n, v in a.items():
        if n not in b:
            out.append(("add", n, None, v))
        elif b[n] != v:
            out.append(("replace", n, b[n], v))
    out += [("remove", n, v, None) for n, v in b.items() if n not in a]
    return out


class LiveStreams:
    """The taps of one live run, the streams paired from them, and the recording."""

    def __init__(self, on_stream: Callable[[LiveStream], None],
                 note: Callable[[str], None]) -> None:
        self.on_stream = on_stream
        self.lock = threading.Lock()
        self.front = HttpTap("client side", self._front, note)
        self.upstream = HttpTap("upstream side", self._upstream, note)
        self.requests: dict[tuple[int, int], Message] = {}  # front (conn, index) -> request
        self.exchanges: dict[str, dict[str, Message]] = {}  # x-request-id -> request/response
        self.upstream_ids: dict[tuple[int, int], str] = {}
        self.streams: list[LiveStream] = []
        self.answers: dict[str, list[dict[str, Any]]] = {}  # cluster -> its answers, in order

    def cluster_tap(self, name: str, note: Callable[[str], None]) -> HttpTap:
        self.answers.setdefault(name, [])
        return HttpTap(f"cluster {name}", lambda m: self._cluster(name, m), note)

    def _front(self, msg: Message) -> None:
        with self.lock:
            if msg.request:
                self.requests[(msg.conn, msg.index)] = msg
                return
            if not msg.done:
                return
            request = self.requests.get((msg.conn, msg.index))
            if request is None:
                return
            exchange = self.exchanges.get(msg.header("x-request-id") or "", {})
            stream = LiveStream(len(self.streams) + 1, request, msg, exchange.get("request"),
                                exchange.get("response"))
            self.streams.append(stream)
        self.on_stream(stream)

    def _upstream(self, msg: Message) -> None:
        with self.lock:
            if msg.request:
                rid = msg.header("x-request-id") or f"<none {msg.conn}.{msg.index}>"
                self.upstream_ids[(msg.conn, msg.index)] = rid
                self.exchanges[rid] = {"request": msg}
            elif (rid := self.upstream_ids.get((msg.conn, msg.index))) is not None:
                self.exchanges[rid]["response"] = msg

    def _cluster(self, name: str, msg: Message) -> None:
        if msg.request or not msg.done:
            return
        answer: dict[str, Any] = {"status": msg.head["status"],
                                  "headers": [list(h) for h in msg.head.get("headers", [])]}
        if msg.body:
            answer["body"] = msg.body
        if msg.trailers:
            answer["trailers"] = [list(h) for h in msg.trailers]
        with self.lock:
            self.answers[name].append(answer)

    def recording(self, plugin: dict[str, Any]) -> dict[str, Any]:
        """The trace of the run: each request as the client sent it, the upstream's own answer to
        it on the same connection, the clusters' answers; timing from the relays' clocks."""
        with self.lock:
            answers = {id(s.request): s.upstream_response for s in self.streams}
            timed: list[tuple[dict[str, Any], float]] = []
            for _key, request in sorted(self.requests.items()):
                timed += request.packets
                answer = answers.get(id(request))
                if answer is not None:  # on the client's connection
                    timed += [(addressed(p, request.client, request.server), ts)
                              for p, ts in answer.packets]
            timed.sort(key=lambda pt: pt[1])
            upstreams = {name: [{k: payload(v) if isinstance(v, bytes) else v
                                 for k, v in a.items()} for a in answers]
                         for name, answers in self.answers.items() if answers}
        trace: dict[str, Any] = {"version": 1}
        if plugin:
            trace["plugin"] = plugin
        if upstreams:
            trace["upstreams"] = upstreams
        trace["packets"] = list(with_delays(timed))
        return trace
