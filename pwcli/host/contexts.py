"""Root and stream contexts: the per-context state the host keeps, named after the spec's nouns."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..events import LocalReply, StreamResult
from .headers import HeaderMap


@dataclass
class Message:
    """One direction of an HTTP stream (request or response) as the filter sees it."""

    headers: HeaderMap | None = None
    trailers: HeaderMap | None = None
    body: bytearray = field(default_factory=bytearray)  # buffered, visible to the plugin
    forwarded: bytearray = field(default_factory=bytearray)  # passed on by the proxy
    headers_live: bool = False
    body_live: bool = False
    trailers_live: bool = False
    started: bool = False  # headers callback delivered (or being delivered)
    paused: str | None = None  # "headers" | "body" | "trailers"
    pending: deque[tuple[str, Any, bool]] = field(default_factory=deque)
    received_end: bool = False  # the trace's last packet of this message arrived
    ended: bool = False  # the end of the message went through the filter
    end_of_stream: bool = False  # the value passed to the running callback

    def __init__(self, headers: HeaderMap | None = None, trailers: HeaderMap | None = None,
                 body: bytearray | None = None, forwarded: bytearray | None = None,
                 headers_live: bool = False, body_live: bool = False,
                 trailers_live: bool = False, started: bool = False, paused: str | None = None,
                 pending: deque[tuple[str, Any, bool]] | None = None, received_end: bool = False,
                 ended: bool = False, end_of_stream: bool = False) -> None:
        # Written out: compiled with the module (the one dataclass generates is interpreted).
        self.headers, self.trailers = headers, trailers
        self.body = bytearray() if body is None else body
        self.forwarded = bytearray() if forwarded is None else forwarded
        self.headers_live, self.body_live, self.trailers_live = (
            headers_live, body_live, trailers_live)
        self.started, self.paused = started, paused
        self.pending = deque() if pending is None else pending
        self.received_end, self.ended, self.end_of_stream = received_end, ended, end_of_stream


class Context:
    is_root = False

    def __init__(self, context_id: int, parent: int) -> None:
        self.id = context_id
        self.parent = parent
        self.properties: dict[tuple[str, ...], bytes] = {}
        self.status: tuple[int, bytes] = (0, b"")  # proxy_get_status: the last callout status


class RootContext(Context):
    is_root = True

    def __init__(self, context_id: int) -> None:
        super().__init__(context_id, 0)
        self.tick_period_ms = 0


class StreamContext(Context):
    def __init__(
        self, context_id: int, parent: int, *, result: StreamResult, info: dict[str, Any]
    ) -> None:
        super().__init__(context_id, parent)
        self.result = result
        self.info = info  # scheme, protocol, connection id, client/server (ip, port), start time
        self.req = Message()
        self.resp = Message()
        self.in_log = False
        self.local_reply: LocalReply | None = None  # requested in the running callback
        self.finished = False
        self.tcp_down = bytearray()
        self.tcp_up = bytearray()
        self.tcp_down_live = False
        self.tcp_up_live = False

    @property
    def index(self) -> int:
        return self.result.index
