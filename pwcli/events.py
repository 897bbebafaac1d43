"""What a replay observed, as plain data: events, header changes, local replies, failures, streams.

Leaf module: the host records into these, the report renders them, nothing here knows a runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Event:
    """One thing that happened, in order. ``t_ns`` is virtual time since the trace start."""

    t_ns: int
    ctx: int
    stream: int | None
    kind: str  # "callback" | "hostcall" | "log" | "note" | "failure" | "local_reply"
    name: str
    args: dict[str, Any]
    result: Any = None

    def __init__(self, t_ns: int = 0, ctx: int = 0, stream: int | None = None, kind: str = "",
                 name: str = "", args: dict[str, Any] | None = None, result: Any = None) -> None:
        # Written out: compiled with the module (the one dataclass generates is interpreted);
        # defaults everywhere, as copy and pickle make the object empty, then fill it.
        self.t_ns, self.ctx, self.stream, self.kind = t_ns, ctx, stream, kind
        self.name, self.args, self.result = name, {} if args is None else args, result


class EventLog(Protocol):
    """Where the host records events: a list, or streaming mode's tally that keeps none."""

    def append(self, ev: Event) -> None: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: slice) -> list[Event]: ...


@dataclass(slots=True)
class HeaderChange:
    map: str
    op: str  # "add" | "replace" | "remove" | "set_pairs"
    name: str
    before: str | None
    after: str | None
    t_ns: int = 0

    def __init__(self, map: str = "", op: str = "", name: str = "", before: str | None = None,
                 after: str | None = None, t_ns: int = 0) -> None:
        # Written out: compiled with the module (the one dataclass generates is interpreted);
        # defaults everywhere, as copy and pickle make the object empty, then fill it.
        self.map, self.op, self.name, self.before, self.after, self.t_ns = (
            map, op, name, before, after, t_ns)


@dataclass
class LocalReply:
    status: int
    details: str
    body: bytes
    headers: list[tuple[bytes, bytes]]
    grpc_status: int | None
    callback: str = ""
    t_ns: int = 0


@dataclass
class Failure:
    kind: str
    callback: str
    ctx: int
    message: str = ""
    frames: tuple[str, ...] = ()
    t_ns: int = 0
    exit_code: int | None = None
    budget: int | None = None  # a timeout from the per-callback budget: the budget, in fuel units


@dataclass
class MessageResult:
    """Final state of one direction of an HTTP stream, as the proxy would forward it."""

    headers: list[tuple[bytes, bytes]] | None = None
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] | None = None
    body_changes: list[dict[str, Any]] = field(default_factory=list)

    def __init__(self, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"",
                 trailers: list[tuple[bytes, bytes]] | None = None,
                 body_changes: list[dict[str, Any]] | None = None) -> None:
        # Written out: compiled with the module (the one dataclass generates is interpreted);
        # defaults everywhere, as copy and pickle make the object empty, then fill it.
        self.headers, self.body, self.trailers = headers, body, trailers
        self.body_changes = [] if body_changes is None else body_changes

    @property
    def header_pairs(self) -> list[tuple[str, str]]:
        """The final headers as ``(name, value)`` text pairs, in order ([] when none)."""
        return _text_pairs(self.headers)

    @property
    def trailer_pairs(self) -> list[tuple[str, str]]:
        return _text_pairs(self.trailers)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        key = name.lower()
        return next((v for n, v in self.header_pairs if n == key), None)


@dataclass
class StreamResult:
    index: int
    ctx: int
    kind: str  # "http" | "tcp"
    client: str
    server: str
    first_packet: int
    request: MessageResult = field(default_factory=MessageResult)
    response: MessageResult = field(default_factory=MessageResult)
    changes: list[HeaderChange] = field(default_factory=list)
    local_reply: LocalReply | None = None
    failure: Failure | None = None
    flags: list[str] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)
    undelivered: list[int] = field(default_factory=list)
    downstream: bytes = b""
    upstream: bytes = b""

    def __init__(self, index: int = 0, ctx: int = 0, kind: str = "", client: str = "",
                 server: str = "", first_packet: int = 0, request: MessageResult | None = None,
                 response: MessageResult | None = None, changes: list[HeaderChange] | None = None,
                 local_reply: LocalReply | None = None, failure: Failure | None = None,
                 flags: list[str] | None = None, actions: list[tuple[str, str]] | None = None,
                 undelivered: list[int] | None = None, downstream: bytes = b"",
                 upstream: bytes = b"") -> None:
        # Written out: compiled with the module (the one dataclass generates is interpreted);
        # defaults everywhere, as copy and pickle make the object empty, then fill it.
        self.index, self.ctx, self.kind, self.client, self.server = (
            index, ctx, kind, client, server)
        self.first_packet = first_packet
        self.request = MessageResult() if request is None else request
        self.response = MessageResult() if response is None else response
        self.changes = [] if changes is None else changes
        self.local_reply, self.failure = local_reply, failure
        self.flags = [] if flags is None else flags
        self.actions = [] if actions is None else actions
        self.undelivered = [] if undelivered is None else undelivered
        self.downstream, self.upstream = downstream, upstream

    @property
    def request_headers(self) -> list[tuple[str, str]]:
        return self.request.header_pairs

    @property
    def response_headers(self) -> list[tuple[str, str]]:
        return self.response.header_pairs

    @property
    def request_body(self) -> bytes:
        return self.request.body

    @property
    def response_body(self) -> bytes:
        return self.response.body


def _text_pairs(pairs: list[tuple[bytes, bytes]] | None) -> list[tuple[str, str]]:
    return [(n.decode("utf-8", "backslashreplace"), v.decode("utf-8", "backslashreplace"))
            for n, v in pairs or []]
