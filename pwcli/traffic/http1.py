"""HTTP/1.1 messages from a connection's two reassembled byte streams, parsed by h11.

h11 parses one side of a connection: the client's bytes with a server-role ``h11.Connection``
(requests), the server's bytes with a client-role one (responses). Each needs its own half of every
exchange to move on, so the request each response answers is replayed into the response parser
(its method matters: a HEAD response has no body), and a stand-in response into the request
parser once a request has ended. Pipelined requests wait their turn. 1xx responses (100 Continue)
are not messages of their own and are left out, as Envoy's codec leaves them out of the filter
chain.

Each message becomes trace packets as its bytes arrive: the head (with the body bytes of the same
segment) when the head is complete, then a packet per segment that brings more body, the last one
with ``end_stream`` (and the trailers of a chunked body).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import h11

from .tcp import Flow, addressed

Emit = Callable[[dict[str, Any], float], None]
MAX_HEAD = 1 << 20  # an incomplete head larger than this is not HTTP worth waiting for


class HttpFlow:
    """One HTTP/1.1 connection: feed its bytes and closes; trace packets come out through emit."""

    def __init__(self, flow: Flow, emit: Emit, note: Callable[[str], None]) -> None:
        self.flow = flow
        self.emit = emit
        self.note = note
        self.requests = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.responses = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        # requests whose responses are still to come: method and Upgrade header (or None)
        self.methods: deque[tuple[bytes, bytes | None]] = deque()
        self.asked = False  # the response parser has been given the request it awaits
        self.dead = False
        self.seen = {True: 0, False: 0}  # bytes of each side fed so far
        self.open = {True: False, False: False}  # a message of that side is under way

    def data(self, from_client: bool, data: bytes, ts: float) -> None:
        if self.dead:
            return
        self.seen[from_client] += len(data)
        (self.requests if from_client else self.responses).receive_data(data)
        self._pump(ts)

    def close(self, from_client: bool, ts: float) -> None:
        if self.dead:
            return
        (self.requests if from_client else self.responses).receive_data(b"")
        self._pump(ts)

    def finish(self) -> None:
        """The capture ended: say so if a message was cut short."""
        if self.dead:
            return
        for from_client, side in ((True, "request"), (False, "response")):
            if self.open[from_client]:
                self.note(f"{self.flow.describe()}: the capture ends inside a {side} "
                          f"(after {self.seen[from_client]} bytes of the "
                          f"{'client' if from_client else 'server'}'s stream)")

    def _pump(self, ts: float) -> None:
        try:
            self._pump_requests(ts)
            self._pump_responses(ts)
        except h11.ProtocolError as exc:
            self._give_up(exc)
            return
        if h11.SWITCHED_PROTOCOL in (self.responses.their_state, self.requests.their_state):
            self._switched(ts)

    def _switched(self, ts: float) -> None:
        """A 101 (Upgrade) or a 2xx to CONNECT: what follows is not HTTP/1.1."""
        self.dead = True
        if self.open[False]:  # a CONNECT's answer: its head is all the stream has
            self._flush({"end_stream": True}, False, ts)
        method, upgrade = self.methods[0] if self.methods else (b"", None)
        what = f"switches protocols (Upgrade: {upgrade.decode('latin-1')})" if upgrade else \
            "turns into a CONNECT tunnel" if method == b"CONNECT" else "switches protocols"
        self.note(f"{self.flow.describe()}: the connection {what}; the rest of it is skipped")

    def _give_up(self, exc: h11.ProtocolError) -> None:
        self.dead = True
        side = "client" if self.requests.their_state is h11.ERROR else "server"
        self.note(f"{self.flow.describe()}: not HTTP/1.1 within the first "
                  f"{self.seen[side == 'client']} bytes of the {side}'s stream ({exc}); "
                  "the rest of the connection is skipped")

    def _pump_requests(self, ts: float) -> None:
        packet: dict[str, Any] | None = None
        while True:
            ev = self.requests.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED or isinstance(ev, h11.ConnectionClosed):
                break
            if isinstance(ev, h11.Request):
                self._flush(packet, True, ts)
                packet = {"method": ev.method.decode("ascii"), "uri_path": _text(ev.target),
                          "headers": _pairs(ev.headers), "end_stream": False}
                upgrade = next((v for n, v in ev.headers if n == b"upgrade"), None)
                self.methods.append((ev.method, upgrade))
                self.open[True] = True
            elif isinstance(ev, h11.Data | h11.EndOfMessage):
                packet, ended = self._body(packet, ev, True, ts)
                if ended:
                    self._answer_request()
        self._flush(packet, True, ts)

    def _answer_request(self) -> None:
        """A stand-in response lets the request parser go on to the next request."""
        r = self.requests
        if r.our_state is h11.SEND_RESPONSE:  # not a 2xx to CONNECT: no tunnel on this side
            status = 400 if self.methods and self.methods[-1][0] == b"CONNECT" else 200
            r.send(h11.Response(status_code=status, headers=[("content-length", "0")]))
            r.send(h11.EndOfMessage())
        if r.our_state is h11.DONE and r.their_state is h11.DONE:
            r.start_next_cycle()

    def _pump_responses(self, ts: float) -> None:
        packet: dict[str, Any] | None = None
        while True:
            if not self.asked:
                if not self.methods or self.responses.our_state is not h11.IDLE:
                    break
                method, upgrade = self.methods[0]
                headers = [("host", "-"), ("content-length", "0")]
                if upgrade is not None:  # so that a 101 answering it is understood
                    headers += [("upgrade", upgrade), ("connection", "upgrade")]
                self.responses.send(h11.Request(method=method, target="/", headers=headers))
                self.responses.send(h11.EndOfMessage())
                self.asked = True
            ev = self.responses.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED or isinstance(ev, h11.ConnectionClosed):
                break
            if isinstance(ev, h11.InformationalResponse):
                if ev.status_code == 101:  # the filters see the 101; then the protocol is another
                    self._flush({"status": 101, "headers": _pairs(ev.headers),
                                 "end_stream": True}, False, ts)
                    self.open[False] = False
                    break
                continue  # 100 Continue and friends: Envoy's codec keeps them from the filters
            if isinstance(ev, h11.Response):
                self._flush(packet, False, ts)
                packet = {"status": ev.status_code, "headers": _pairs(ev.headers),
                          "end_stream": False}
                self.open[False] = True
            elif isinstance(ev, h11.Data | h11.EndOfMessage):
                packet, ended = self._body(packet, ev, False, ts)
                if not ended:
                    continue
                self.methods.popleft()
                self.asked = False
                if self.responses.their_state is h11.DONE:
                    self.responses.start_next_cycle()
        self._flush(packet, False, ts)

    def _body(self, packet: dict[str, Any] | None, ev: h11.Data | h11.EndOfMessage, forward: bool,
              ts: float) -> tuple[dict[str, Any] | None, bool]:
        """Body bytes join the packet being built; the message's end sends it (with the trailers of
        a chunked body). Returns the packet still being built, and whether the message ended."""
        if isinstance(ev, h11.Data):
            packet = packet or {"end_stream": False}
            packet["body"] = packet.get("body", b"") + ev.data
            return packet, False
        packet = packet or {}
        packet["end_stream"] = True
        if ev.headers:
            packet["trailers"] = _pairs(ev.headers)
        self._flush(packet, forward, ts)
        self.open[forward] = False
        return None, True

    def _flush(self, packet: dict[str, Any] | None, forward: bool, ts: float) -> None:
        if packet is not None:
            self.emit(addressed({"forward_direction": forward, **packet}, self.flow.client,
                                self.flow.server), ts)


def _pairs(headers: Any) -> list[list[str]]:
    """Header names in the case they were sent, values as text (bytes above 0x7f as latin-1)."""
    return [[_text(name), _text(value)] for name, value in headers.raw_items()]


def _text(b: bytes) -> str:
    try:
        return b.decode("ascii")
    except UnicodeDecodeError:
        return b.decode("latin-1")
