"""TCP reassembly: each connection's two byte streams in order, from the segments of a capture.

A connection starts with its SYN (the SYN's sender is the client) or, when the capture began after
the handshake, with its first data (the side with the higher port is then taken as the client).
Per direction the bytes are delivered in sequence order: retransmitted bytes are dropped, segments
that arrive early wait for the gap before them to fill, sequence numbers wrap at 2**32. A FIN is
delivered once the bytes before it are; a RST at once. A connection that lost bytes (a segment the
capture did not keep, seen by a gap or by the peer acknowledging bytes the capture lacks, or a frame
its snaplen cut) is reported once, where the loss is, and nothing
more of it is delivered. State is kept only for open connections, so memory stays flat however long
the capture is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dpkt

from .frames import Segment

WRAP = 1 << 32
HALF = 1 << 31
MAX_WAITING = 8 << 20  # bytes held past a gap before the connection is declared lost


@dataclass
class Flow:
    number: int  # connections in order of appearance, from 1
    client: tuple[str, int]
    server: tuple[str, int]

    def describe(self) -> str:
        return f"connection {self.number} ({_addr(self.client)} -> {_addr(self.server)})"


def addressed(packet: dict[str, Any], client: tuple[str, int],
              server: tuple[str, int]) -> dict[str, Any]:
    """A trace packet with the addresses of its connection, by its direction."""
    src, dst = (client, server) if packet["forward_direction"] else (server, client)
    return {**packet, "sip": src[0], "sp": src[1], "dip": dst[0], "dp": dst[1]}


def _unseen(side: _Side, ack: int) -> int:
    """How far ``ack`` acknowledges past what the capture has of ``side``: 0 when not, 1 for a FIN
    (seen or not: a missed FIN loses no bytes), more for bytes the capture lacks."""
    if side.next is None or side.next in side.waiting:
        return 0
    ahead = (ack - side.next) % WRAP
    if ahead >= HALF or (ahead == 1 and side.closed):
        return 0
    return ahead


def _addr(a: tuple[str, int]) -> str:
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


@dataclass
class Data:
    flow: Flow
    from_client: bool
    data: bytes
    ts: float


@dataclass
class Close:
    flow: Flow
    from_client: bool
    kind: str  # "fin" | "rst"
    ts: float


@dataclass
class Lost:
    flow: Flow
    from_client: bool
    offset: int  # bytes of that side's stream delivered before the loss
    why: str


@dataclass
class _Side:
    next: int | None = None  # the sequence number expected next
    start: int = 0
    waiting: dict[int, bytes] = field(default_factory=dict)
    fin: int | None = None  # sequence number of the FIN, once seen
    closed: bool = False

    @property
    def delivered(self) -> int:
        return 0 if self.next is None else (self.next - self.start) % WRAP

    def held(self) -> int:
        return sum(len(d) for d in self.waiting.values())


@dataclass
class _Conn:
    flow: Flow
    sides: dict[bool, _Side]  # from_client -> its state
    lost: bool = False


Event = Data | Close | Lost
Key = tuple[tuple[str, int], tuple[str, int]]


class Reassembler:
    """Feed segments in capture order; each feed yields the events they complete."""

    def __init__(self) -> None:
        self.conns: dict[Key, _Conn] = {}
        self.count = 0

    def feed(self, seg: Segment) -> Iterator[Event]:
        key = (seg.src, seg.dst) if seg.src <= seg.dst else (seg.dst, seg.src)
        conn = self.conns.get(key)
        syn, fin, rst = (seg.flags & f for f in (dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST))
        if conn is None:
            if not (syn or seg.data):  # a stray ACK, FIN or RST of a connection already gone
                return
            conn = self._open(key, seg, bool(syn and not seg.flags & dpkt.tcp.TH_ACK))
        elif syn and not seg.flags & dpkt.tcp.TH_ACK and conn.sides[True].closed \
                and conn.sides[False].closed:
            del self.conns[key]  # the port pair is reused by a new connection
            yield from self.feed(seg)
            return
        from_client = seg.src == conn.flow.client
        side = conn.sides[from_client]
        if conn.lost:  # forgotten once it ends: a RST, or a FIN from each side
            side.closed = side.closed or bool(fin)
            if rst or (conn.sides[True].closed and conn.sides[False].closed):
                del self.conns[key]
            return
        if rst:
            yield Close(conn.flow, from_client, "rst", seg.ts)
            del self.conns[key]
            return
        if side.closed and not syn:
            return  # nothing comes after a FIN: a retransmission, or sequence numbers gone wrong
        if side.next is None:
            side.next = side.start = (seg.seq + 1) % WRAP if syn else seg.seq
        seq = (seg.seq + 1) % WRAP if syn else seg.seq
        if fin:
            side.fin = (seq + len(seg.data) + seg.missing) % WRAP
        if seg.missing:
            yield _lose(conn, from_client, side.delivered,
                        f"the capture's snaplen cut frame {seg.frame} "
                        f"({seg.missing} bytes not kept)")
            return
        other = conn.sides[not from_client]
        unseen = _unseen(other, seg.ack) if seg.flags & dpkt.tcp.TH_ACK else 0
        if unseen == 1 and not other.closed:  # the peer's FIN, which the capture missed
            other.fin, other.closed = other.next, True
            yield Close(conn.flow, not from_client, "fin", seg.ts)
        elif unseen > 1:
            yield _lose(conn, not from_client, other.delivered,
                        "the capture is missing a segment (acknowledged, never seen)")
            return
        if seg.data:
            side.waiting[seq] = max(side.waiting.get(seq, b""), seg.data, key=len)
        yield from self._deliver(conn, from_client, seg.ts)
        if side.held() > MAX_WAITING:
            yield _lose(conn, from_client, side.delivered, "the capture is missing a segment")
            return
        if conn.sides[True].closed and conn.sides[False].closed:
            del self.conns[key]

    def finish(self) -> Iterator[Event]:
        """The capture ended: connections still waiting for missing bytes are reported."""
        for conn in list(self.conns.values()):
            for from_client, side in conn.sides.items():
                if side.waiting and not conn.lost:
                    conn.lost = True
                    yield Lost(conn.flow, from_client, side.delivered,
                               "the capture is missing a segment")
        self.conns.clear()

    def _open(self, key: Key, seg: Segment, client_syn: bool) -> _Conn:
        if client_syn or seg.flags & dpkt.tcp.TH_SYN:
            client, server = (seg.src, seg.dst) if client_syn else (seg.dst, seg.src)
        else:  # joined mid-connection: the higher port is the client's
            client, server = (seg.src, seg.dst) if seg.src[1] >= seg.dst[1] else (seg.dst, seg.src)
        self.count += 1
        conn = _Conn(Flow(self.count, client, server), {True: _Side(), False: _Side()})
        self.conns[key] = conn
        return conn

    def _deliver(self, conn: _Conn, from_client: bool, ts: float) -> Iterator[Event]:
        side = conn.sides[from_client]
        assert side.next is not None
        progress = True
        while progress and side.waiting:
            progress = False
            for seq in list(side.waiting):
                ahead = (seq - side.next) % WRAP
                data = side.waiting[seq]
                if ahead < HALF and ahead > 0:
                    continue
                del side.waiting[seq]
                behind = 0 if ahead == 0 else WRAP - ahead
                if behind < len(data):  # new bytes (or partly new: a retransmission overlapping)
                    yield Data(conn.flow, from_client, data[behind:], ts)
                    side.next = (side.next + len(data) - behind) % WRAP
                progress = True
        if side.fin is not None and side.fin == side.next and not side.closed:
            side.closed = True
            yield Close(conn.flow, from_client, "fin", ts)


def _lose(conn: _Conn, from_client: bool, offset: int, why: str) -> Lost:
    """The connection lost bytes: nothing more of it is delivered."""
    conn.lost = True
    conn.sides[True].waiting.clear()
    conn.sides[False].waiting.clear()
    return Lost(conn.flow, from_client, offset, why)
