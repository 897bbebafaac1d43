"""pcap and pcapng captures as trace packets: frames -> TCP segments -> reassembled connections ->
HTTP/1.1 messages (or TCP data for connections that are not HTTP), in the capture's order.

A connection is HTTP when its client opens with a request line; TLS (a handshake record first) and
HTTP/2 with prior knowledge are skipped with a line each; any other connection is replayed as TCP
data for network filters, up to its first close. ``--filter`` selects connections by address.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from .frames import check, segments
from .http1 import HttpFlow
from .tally import Tally, Timed
from .tcp import Close, Data, Flow, Lost, Reassembler, addressed

__all__ = ["Tally", "capture_packets", "check"]

REQUEST_LINE = re.compile(rb"[A-Z][A-Z_-]{0,19} [^ \r\n]")


class _TcpFlow:
    """A connection that is not HTTP: its data as TCP packets, up to its first close."""

    def __init__(self, flow: Flow, emit: Callable[[dict[str, Any], float], None]) -> None:
        self.flow = flow
        self.emit = emit
        self.closed = False

    def data(self, from_client: bool, data: bytes, ts: float) -> None:
        if not self.closed:
            self._send({"forward_direction": from_client, "data": data}, ts)

    def close(self, from_client: bool, kind: str, ts: float) -> None:
        if not self.closed:
            self.closed = True
            self._send({"forward_direction": from_client, "close": kind}, ts)

    def _send(self, packet: dict[str, Any], ts: float) -> None:
        self.emit(addressed(packet, self.flow.client, self.flow.server), ts)


class _Skipped:
    """A connection whose bytes are not replayed (TLS, HTTP/2, lost bytes)."""

    def data(self, *_: object) -> None:
        pass

    def close(self, *_: object) -> None:
        pass


Select = Callable[[tuple[str, int], tuple[str, int]], bool]


def capture_packets(path: str, kind: str, tally: Tally, note: Callable[[str], None],
                    select: Select | None = None) -> Iterator[Timed]:
    """Trace packets (dicts, addresses filled in) with their capture timestamps, in order."""
    reader = _Reader(tally, note)
    reasm = Reassembler()
    for seg in segments(path, kind, reader.skip_line):
        if select is not None and not select(seg.src, seg.dst):
            continue
        for ev in reasm.feed(seg):
            reader.apply(ev)
        yield from reader.take()
    for ev in reasm.finish():
        reader.apply(ev)
    for h in reader.flows.values():
        if isinstance(h, HttpFlow):
            h.finish()
    yield from reader.take()


class _Reader:
    """Routes each connection's reassembled bytes to what it turned out to be."""

    def __init__(self, tally: Tally, note: Callable[[str], None]) -> None:
        self.tally = tally
        self.note = note
        self.flows: dict[int, HttpFlow | _TcpFlow | _Skipped] = {}  # open connections only
        self.fins: dict[int, int] = {}
        self.out: list[Timed] = []

    def take(self) -> list[Timed]:
        out, self.out = self.out, []
        return out

    def skip_line(self, line: str) -> None:
        self.tally.skipped.append(line)
        self.note(line)

    def apply(self, ev: Data | Close | Lost) -> None:
        number = ev.flow.number
        if isinstance(ev, Data):
            h = self.flows.get(number) or self._classify(ev)
            h.data(ev.from_client, ev.data, ev.ts)
            return
        h = self.flows.get(number)
        if isinstance(ev, Lost):
            if h is None:
                self.tally.connections += 1
            side = "client" if ev.from_client else "server"
            self.skip_line(f"{ev.flow.describe()}: {ev.why} at byte {ev.offset} of the {side}'s "
                           "stream; the rest of the connection is skipped")
            self._end(number)
            return
        if h is None:
            return
        if isinstance(h, HttpFlow):
            h.close(ev.from_client, ev.ts)
        else:
            h.close(ev.from_client, ev.kind, ev.ts)
        self.fins[number] = self.fins.get(number, 0) + 1
        if ev.kind == "rst" or self.fins[number] == 2:  # the connection is over: forget it
            if isinstance(h, HttpFlow):
                h.finish()
            self._end(number)

    def _end(self, number: int) -> None:
        self.flows.pop(number, None)
        self.fins.pop(number, None)

    def _classify(self, first: Data) -> HttpFlow | _TcpFlow | _Skipped:
        flow = first.flow
        self.tally.connections += 1
        data = first.data
        h: HttpFlow | _TcpFlow | _Skipped
        if first.from_client and data[:1] == b"\x16" and data[1:2] == b"\x03":
            h = self._skip(flow, "TLS (encrypted: replay its plaintext as a trace or a HAR)")
        elif first.from_client and data.startswith(b"PRI * HTTP/2.0"):
            h = self._skip(flow, "HTTP/2 (captures are read as HTTP/1.1; a HAR keeps HTTP/2)")
        elif first.from_client and REQUEST_LINE.match(data):
            h = HttpFlow(flow, self._emit, self.skip_line)
        else:
            self.tally.tcp += 1
            h = _TcpFlow(flow, self._emit)
        self.flows[flow.number] = h
        return h

    def _skip(self, flow: Flow, why: str) -> _Skipped:
        self.skip_line(f"{flow.describe()}: {why}; skipped")
        return _Skipped()

    def _emit(self, packet: dict[str, Any], ts: float) -> None:
        if "method" in packet:
            self.tally.http += 1
        self.out.append((packet, ts))
