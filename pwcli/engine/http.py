"""One HTTP stream through the filter: the request and the response as they arrive, delivered to
the plugin's callbacks, paused and resumed, answered locally, completed.

Delivery follows Envoy's filter manager (``source/common/http/filter_manager.cc``) as the wasm
filter sees it through proxy-wasm-cpp-host: headers, then body chunks, then trailers; a paused
direction buffers what follows; resuming after a headers pause hands the buffered body to one
callback; the response waits while the request is paused.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, ClassVar

from ..events import LocalReply
from ..host.contexts import Message
from ..host.headers import HeaderMap
from ..host.spec import StreamType
from ..trace import Packet
from .callbacks import continue_or_stop, data_action, headers_action
from .messages import (
    coalesce_body,
    local_reply_headers,
    pairs,
    request_headers,
    request_id,
    response_headers,
)
from .options import NS_PER_MS
from .stream import Stream

if TYPE_CHECKING:
    from ..host.contexts import StreamContext
    from .engine import Engine
from .vm import VmFailed

PAUSED_HARD = ("headers", "trailers")  # body data may still be buffered behind a body pause


class Direction(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"

    def callback(self, part: str) -> str:
        """``proxy_on_request_headers``, ``proxy_on_response_body``, ..."""
        return f"proxy_on_{self.value}_{part}"


REQUEST, RESPONSE = Direction.REQUEST, Direction.RESPONSE


class HttpStream(Stream):
    kind: ClassVar[str] = "http"

    def __init__(self, engine: Engine, ctx: StreamContext) -> None:
        super().__init__(engine, ctx)
        self.held: list[tuple[Packet, int]] = []  # server packets held while the request is paused
        self.local_reply_sent = False

    def message(self, d: Direction) -> Message:
        return self.ctx.req if d is REQUEST else self.ctx.resp

    # -- arrival ----------------------------------------------------------------------------
    def request_packet(self, p: Packet) -> None:
        s = self.ctx
        if s.finished:
            return
        if not s.req.started:
            rid = request_id(self.e.options.seed, self.result.index, self.e.rng) \
                if self.e.envoy_headers else None
            s.req.headers = HeaderMap(request_headers(p, rid))
        self._queue(s.req, p)
        if p.end_stream:
            s.info["request_end_ns"] = self.e.clock.now_ns
        self.pump(REQUEST)

    def response_packet(self, p: Packet, index: int) -> None:
        s = self.ctx
        if self.local_reply_sent or self.result.local_reply is not None or s.finished:
            self.result.undelivered.append(index)
            return
        if (s.req.paused is not None or self.held) and not self.down:
            self.held.append((p, index))
            return
        if not s.resp.started:
            service_ms = None
            if self.e.envoy_headers:
                now = self.e.clock.now_ns
                service_ms = (now - s.info.get("request_end_ns", now)) // NS_PER_MS
            s.resp.headers = HeaderMap(response_headers(p, service_ms))
        self._queue(s.resp, p)
        self.pump(RESPONSE)

    @staticmethod
    def _queue(m: Message, p: Packet) -> None:
        """Queue what the packet brings, framed as Envoy's HTTP/1 codec delivers it: each body
        chunk without end of stream, then an empty last frame that ends the message (the codec's
        ``onMessageComplete``), unless trailers end it."""
        first = not m.started
        if first:
            m.started = True
            m.pending.append(("headers", None, p.end_stream and not p.body and not p.trailers))
        if p.body:
            m.pending.append(("body", p.body, False))
        if p.end_stream and not p.trailers and (p.body or not first):
            m.pending.append(("body", b"", True))
        if p.trailers:
            m.pending.append(("trailers", pairs(p.trailers), True))
        if p.end_stream:
            m.received_end = True

    # -- delivery ---------------------------------------------------------------------------
    def pump(self, d: Direction) -> None:
        """Deliver what is pending in direction ``d`` until it pauses or runs out."""
        s = self.ctx
        m = self.message(d)
        if self.down and not s.finished:
            self.fail()
            return
        while m.pending and m.paused not in PAUSED_HARD and not s.finished:
            if self.down:
                self.fail()
                return
            kind, payload, eos = m.pending.popleft()
            try:
                if kind == "headers":
                    self._deliver_headers(d, m, eos)
                elif kind == "body":
                    self._deliver_body(d, m, payload, eos)
                else:
                    self._deliver_trailers(d, m, payload)
            except VmFailed:
                self.fail()
                return
            if self.send_local_reply():
                return
            self.e.apply_effects()
        if s.finished:
            return
        if m.received_end and not m.pending and m.paused is None:
            m.ended = True
        if d is REQUEST and m.paused is None and self.held:
            self._release_held_responses()
        if d is RESPONSE and m.ended:
            self.complete()

    def _release_held_responses(self) -> None:
        held, self.held = self.held, []
        for packet, index in held:
            self.response_packet(packet, index)

    def _deliver_headers(self, d: Direction, m: Message, eos: bool) -> None:
        assert m.headers is not None, "bug in pwcli: headers callback without headers"
        s = self.ctx
        m.headers_live = True
        m.end_of_stream = eos
        name = d.callback("headers")
        r = self.e.vm.call(s, name, s.id, len(m.headers), int(eos))
        action = headers_action(r, self.e.plugin.abi, s.local_reply is not None)
        self.result.actions.append((name, action))
        if action in ("continue", "continue_and_end_stream"):
            m.headers_live = False
        else:
            m.paused = "headers"

    def _deliver_body(self, d: Direction, m: Message, chunk: bytes, eos: bool) -> None:
        s = self.ctx
        m.body.extend(chunk)
        m.body_live = True
        m.end_of_stream = eos
        name = d.callback("body")
        r = self.e.vm.call(s, name, s.id, len(m.body), int(eos))
        action = data_action(r, s.local_reply is not None)
        self.result.actions.append((name, action))
        if action == "continue":
            _forward_body(m)
        else:
            m.paused = "body"

    def _deliver_trailers(self, d: Direction, m: Message, trailer_pairs: list) -> None:
        s = self.ctx
        if m.trailers is None:
            m.trailers = HeaderMap(trailer_pairs)
        else:
            for n, v in trailer_pairs:
                m.trailers.add(n, v)
        m.trailers_live = True
        name = d.callback("trailers")
        r = self.e.vm.call(s, name, s.id, len(m.trailers))
        action = continue_or_stop(r, s.local_reply is not None)
        self.result.actions.append((name, action))
        if action == "continue":
            m.trailers_live = False
            if m.paused == "body":
                _forward_body(m)
        else:
            m.paused = "trailers"

    # -- what the plugin asks for -----------------------------------------------------------
    def resume_message(self, stream_type: int) -> None:
        if self.ctx.finished:
            return
        d = REQUEST if stream_type == StreamType.HTTP_REQUEST else RESPONSE
        m = self.message(d)
        host = self.e.vm.host
        if m.paused is None:
            host.record("note", "continue_ignored", {"stream": d.value, "reason": "not paused"},
                        ctx=self.ctx)
            return
        host.record("note", "resumed", {"stream": d.value, "from": m.paused}, ctx=self.ctx)
        if m.paused == "headers":
            m.paused = None
            m.headers_live = False  # Envoy's continueStream drops its pointer to the headers
            coalesce_body(m)
        elif m.paused == "body":
            _forward_body(m)
        else:
            m.trailers_live = False
            if m.body:
                _forward_body(m)
            m.paused = None
        self.pump(d)

    def drop_pending(self) -> None:
        s = self.ctx
        s.req.pending.clear()
        s.resp.pending.clear()
        self.held.clear()
        s.req.paused = s.resp.paused = None

    def send_local_reply(self) -> bool:
        """Send the local reply the plugin asked for, if any (Envoy's ``sendLocalReply``)."""
        s = self.ctx
        lr = s.local_reply
        if lr is None or self.local_reply_sent:
            return False
        self.local_reply_sent = True
        self.result.local_reply = lr
        self.e.vm.host.record("local_reply", "send_local_response",
                              {"status": lr.status, "details": lr.details}, ctx=s)
        s.req.pending.clear()
        s.req.paused = None
        s.req.headers_live = s.req.body_live = s.req.trailers_live = False
        self.held.clear()
        headers = local_reply_headers(lr)
        s.local_reply = None
        if not s.resp.started:
            # Envoy's encodeLocalReply: the reply passes through this plugin's response callbacks.
            s.resp = Message(headers=HeaderMap(headers), started=True, received_end=True)
            s.resp.pending.append(("headers", None, not lr.body))
            if lr.body:
                s.resp.pending.append(("body", lr.body, True))
            self.pump(RESPONSE)
        else:
            s.resp = Message(headers=HeaderMap(headers), started=True, received_end=True,
                             ended=True)
            s.resp.forwarded = bytearray(lr.body)
            self.complete()
        return True

    # -- failure and the end ----------------------------------------------------------------
    def fail_closed(self) -> None:
        """Envoy's fail-closed answer is a local 503 without entering the plugin."""
        s = self.ctx
        lr = LocalReply(503, "wasm_fail_stream", b"", [], None, "", self.e.clock.now_ns)
        self.result.local_reply = lr
        s.resp.headers = HeaderMap(local_reply_headers(lr))
        s.resp.forwarded = bytearray()
        s.resp.body = bytearray()
        self.record_final()

    def pass_through(self) -> None:
        super().pass_through()
        s = self.ctx
        for m in (s.req, s.resp):
            m.headers_live = m.body_live = m.trailers_live = False
            m.paused = None
            while m.pending:
                kind, payload, _ = m.pending.popleft()
                if kind == "body":
                    m.body.extend(payload)
                elif kind == "trailers":
                    m.trailers = HeaderMap(payload)
            m.forwarded.extend(m.body)
            m.body.clear()
            if m.received_end:
                m.ended = True
        if self.held:
            self._release_held_responses()
        if s.req.ended and s.resp.ended and not s.finished:
            s.finished = True
            self.e.forget(self)
            self.record_final()

    def record_final(self) -> None:
        s, r = self.ctx, self.result
        for msg, out in ((s.req, r.request), (s.resp, r.response)):
            out.headers = list(msg.headers.pairs) if msg.headers is not None else None
            out.body = bytes(msg.forwarded) + bytes(msg.body)
            out.trailers = list(msg.trailers.pairs) if msg.trailers is not None else None

    def stalled(self) -> bool:
        s = self.ctx
        return bool(s.req.paused or s.resp.paused or self.held)

    def unfinished_flag(self) -> str:
        s = self.ctx
        return "" if s.req.ended and s.resp.ended else "incomplete"

    def release_held(self) -> None:
        if self.held:
            self.result.undelivered.extend(i for _, i in self.held)
            self.held = []


def _forward_body(m: Message) -> None:
    """The buffered body goes on to the next filter."""
    m.forwarded.extend(m.body)
    m.body.clear()
    m.body_live = False
    m.paused = None
