"""Demux: which connection a packet belongs to (its canonical 5-tuple) and which stream on it.

HTTP/1.1 semantics as Envoy's codec applies them: on one connection, a request opens a stream and
its packets continue it until ``end_stream``; responses answer the open streams in order. Envoy
reads a pipelined request only once the response before it has ended (its HTTP/1 codec stops
reading the connection meanwhile), so such a request waits here, and opens its stream then.
A TCP connection (packets with ``data`` or ``close``) is one stream until it closes; a later packet
of the same 5-tuple opens a new connection.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..trace import Packet
from .http import HttpStream
from .tcp import TcpStream

if TYPE_CHECKING:
    from .engine import Engine

ConnKey = tuple


class Connection:
    def __init__(self, cid: int, key: ConnKey, tcp: bool) -> None:
        self.id = cid
        self.key = key
        self.tcp = tcp
        self.open_request: HttpStream | None = None  # the request still arriving
        self.awaiting: deque[HttpStream | None] = deque()  # requests waiting for their response
        self.tcp_stream: TcpStream | None = None
        self.held: deque[tuple[int, Packet]] = deque()  # pipelined, not read by Envoy yet

    @property
    def idle(self) -> bool:
        return self.open_request is None and not self.awaiting and not self.held and (
            self.tcp_stream is None or self.tcp_stream.ctx.finished)

    @property
    def reading(self) -> bool:
        """Envoy reads this connection: a request is still arriving, or none awaits its
        response."""
        return self.open_request is not None or not self.awaiting


class Demux:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.conns: dict[ConnKey, Connection] = {}

    def packet(self, index: int, p: Packet, vm_ok: bool) -> None:
        key = p.key
        conn = self.conns.get(key)
        if conn is None:
            flow = self.e.flow
            cid = (flow.seen[key] >> 1) if flow is not None else len(self.conns) + 1
            conn = Connection(cid, key, p.is_tcp)
            self.conns[key] = conn
        if not vm_ok:
            self._not_run(conn, index, p)
        elif p.is_tcp:
            self._tcp_packet(conn, index, p)
        elif p.forward_direction:
            if conn.reading and not conn.held:
                self._request(conn, index, p)
            else:
                conn.held.append((index, p))
        else:
            s = conn.awaiting[0]
            if p.end_stream:
                conn.awaiting.popleft()
            s.response_packet(p, index)  # type: ignore[union-attr]
            if p.end_stream:
                self._release(conn)
        if self.e.streaming and conn.idle:
            del self.conns[key]  # idle: a later packet of this 5-tuple gets its id from the flow

    def _request(self, conn: Connection, index: int, p: Packet) -> None:
        s = conn.open_request
        if s is None:
            s = self.e.open_stream(HttpStream, conn.id, index, p)
            conn.awaiting.append(s)
        conn.open_request = None if p.end_stream else s
        s.request_packet(p)

    def _release(self, conn: Connection) -> None:
        """The response before them has ended: Envoy reads the requests that waited."""
        while conn.held and conn.reading:
            index, p = conn.held.popleft()
            self._request(conn, index, p)

    def release_all(self) -> None:
        """The trace ended: requests still waiting behind an unanswered one are read now, so the
        report shows them (incomplete)."""
        for conn in self.conns.values():
            while conn.held:
                index, p = conn.held.popleft()
                self._request(conn, index, p)

    def forget_idle(self) -> None:
        """Drop the connections with nothing open (a later packet of their 5-tuple gets its id
        from the flow checker)."""
        self.conns = {k: c for k, c in self.conns.items() if not c.idle}

    def _not_run(self, conn: Connection, index: int, p: Packet) -> None:
        """The VM never started: list the streams that could not run."""
        if p.is_tcp or not p.forward_direction or conn.open_request is not None:
            if p.forward_direction and not p.end_stream:
                return
            if not p.is_tcp and not p.forward_direction and conn.awaiting and p.end_stream:
                conn.awaiting.popleft()
            return
        r = self.e.stream_result(index, p, "http", 0)
        r.flags.append("not_run")
        conn.awaiting.append(None)
        conn.open_request = None if p.end_stream else _NotRun  # type: ignore[assignment]

    def _tcp_packet(self, conn: Connection, index: int, p: Packet) -> None:
        s = conn.tcp_stream
        if s is not None and s.ctx.finished and "failed" in s.result.flags and (
            not s.ctx.info.get("closed")
        ):
            # The failed VM's connection is closed: its packets go nowhere until the trace closes
            # it too; after that the 5-tuple is a new connection.
            s.result.undelivered.append(index)
            if p.close is not None:
                s.ctx.info["closed"] = True
            return
        if s is None or s.ctx.finished:
            s = self.e.open_stream(TcpStream, conn.id, index, p)
            conn.tcp_stream = s
            if not self.e.vm.down:
                s.open()
        s.packet(p, index)


class _NotRun:
    """Stands for a request of a VM that never started, until its last packet arrives."""
