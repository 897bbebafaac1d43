"""What each relay saw, as HTTP messages: the bytes of every connection parsed by the capture
reader's HTTP/1.1 parser (``pwcli.traffic.http1``) into trace packets, grouped per message.

``HttpTap`` is a relay's tap. Its ``on_message`` callback receives each message once it is whole
(or, for a head, as soon as it is: ``Message.done`` tells).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..traffic.http1 import HttpFlow
from ..traffic.tcp import Flow
from .relay import Address


@dataclass
class Message:
    """One request or response as a relay saw it: its trace packets and their times."""

    conn: int
    client: Address
    server: Address
    request: bool
    index: int  # its number among the connection's messages of that direction, from 0
    packets: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    done: bool = False

    @property
    def head(self) -> dict[str, Any]:
        return self.packets[0][0]

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Names lower-cased, in order."""
        return [(n.lower(), v) for n, v in self.head.get("headers", [])]

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)

    @property
    def body(self) -> bytes:
        return b"".join(p.get("body", b"") for p, _ in self.packets)

    @property
    def trailers(self) -> list[tuple[str, str]]:
        last = self.packets[-1][0]
        return [(n.lower(), v) for n, v in last.get("trailers", [])]

    @property
    def started(self) -> float:
        return self.packets[0][1]


class HttpTap:
    """A relay's tap: each connection's bytes through an HTTP/1.1 parser, out as Messages."""

    def __init__(self, name: str, on_message: Callable[[Message], None],
                 note: Callable[[str], None]) -> None:
        self.name = name
        self.on_message = on_message
        self.note = note
        self.lock = threading.Lock()  # both directions of a connection run in their own threads
        self.flows: dict[int, HttpFlow] = {}
        self.current: dict[tuple[int, bool], Message] = {}
        self.counts: dict[tuple[int, bool], int] = {}

    def opened(self, conn: int, client: Address, server: Address) -> None:
        with self.lock:
            flow = Flow(conn, client, server)
            self.flows[conn] = HttpFlow(flow, lambda p, ts: self._packet(flow, p, ts),
                                        lambda line: self.note(f"{self.name}: {line}"))

    def data(self, conn: int, from_client: bool, data: bytes, ts: float) -> None:
        with self.lock:
            flow = self.flows.get(conn)
            if flow is not None:
                flow.data(from_client, data, ts)

    def closed(self, conn: int, from_client: bool, ts: float) -> None:
        with self.lock:
            flow = self.flows.get(conn)
            if flow is None:
                return
            flow.close(from_client, ts)
            if from_client:
                return
            flow.finish()
            del self.flows[conn]
            for forward in (True, False):
                self.counts.pop((conn, forward), None)

    def _packet(self, flow: Flow, packet: dict[str, Any], ts: float) -> None:
        forward = packet["forward_direction"]
        key = (flow.number, forward)
        msg = self.current.get(key)
        if msg is None or "method" in packet or "status" in packet:
            index = self.counts.get(key, 0)
            self.counts[key] = index + 1
            msg = Message(flow.number, flow.client, flow.server, forward, index)
            self.current[key] = msg
        msg.packets.append((packet, ts))
        if packet.get("end_stream", True):
            msg.done = True
            del self.current[key]
        if len(msg.packets) == 1 or msg.done:
            self.on_message(msg)
