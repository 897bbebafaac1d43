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
