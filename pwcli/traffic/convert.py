"""Captures as traces: what ``pwcli replay CAPTURE`` replays and ``pwcli convert`` writes.

``open_capture(path)`` tells a capture by its content and returns a ``CaptureTrace``, read
incrementally like a JSON Lines trace (each pass over ``packets`` reads the capture again), or
None for anything else. Timing: ``delta_ms`` is the gap between the capture's timestamps of
consecutive packets (the first packet's is 0), kept to the microsecond.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from ..errors import InputError
from ..trace import Packet, parse_packet
from .detect import sniff
from .flowfilter import Endpoint
from .tally import Tally, Timed

FIRST_KEYS = ("sip", "sp", "dip", "dp", "forward_direction")  # then delta_ms, then the rest


class CaptureTrace:
    """A pcap, pcapng or HAR file seen as a trace whose packets are read as they replay."""

    streaming = True
    plugin = None
    properties = None
    upstreams = None
    expect = None
    version = 1

    def __init__(self, path: str, kind: str,
                 select: Callable[[Endpoint, Endpoint], bool] | None = None) -> None:
        self.source = path
        self.kind = kind  # "pcap" | "pcapng" | "har"
        self.select = select
        self.notes: list[str] = []  # what the last pass skipped, one line each
        self.tally = Tally()
        self.entries: Any = None
        if kind == "har":
            from .har import load_har  # pydantic is there already

            self.entries = load_har(path)
        else:
            self._pcap().check(path, kind)

    def _pcap(self) -> Any:
        """The pcap reader module (dpkt and h11 are the ``capture`` extra's)."""
        try:
            from . import pcap
        except ImportError as exc:
            raise InputError(f"{self.source}: reading {self.kind} captures needs {exc.name}: "
                             "pip install 'pwcli[capture]'") from None
        return pcap

    def timed(self) -> Iterator[Timed]:
        """Packets (dicts, without delta_ms) with their timestamps, in the capture's order."""
        self.tally = Tally()
        self.notes = []
        if self.kind == "har":
            from .har import har_packets

            packets = har_packets(self.source, self.entries, self.tally)
            if self.select is not None:
                packets = [(p, ts) for p, ts in packets
                           if self.select((p["sip"], p["sp"]), (p["dip"], p["dp"]))]
            return iter(packets)
        return self._pcap().capture_packets(self.source, self.kind, self.tally,
                                            self.notes.append, self.select)

    def dicts(self) -> Iterator[dict[str, Any]]:
        """The trace's packets as JSON objects, ``delta_ms`` filled in."""
        return with_delays(self.timed())

    @property
    def packets(self) -> Iterator[Packet]:
        return (parse_packet(d, i, self.source) for i, d in enumerate(self.dicts()))

    def summary(self) -> str:
        return self.tally.line(self.source)


def with_delays(timed: Iterable[Timed]) -> Iterator[dict[str, Any]]:
    """JSON-ready packets with ``delta_ms`` from their timestamps (bytes as text or base64)."""
    last: float | None = None
    for packet, ts in timed:
        delta = 0.0 if last is None else max(0.0, ts - last) * 1000
        last = ts if last is None else max(last, ts)
        out: dict[str, Any] = {k: packet[k] for k in FIRST_KEYS}
        out["delta_ms"] = round(delta, 3)
        for k, v in packet.items():
            if k not in out:
                out[k] = payload(v) if isinstance(v, bytes) else v
        yield out


def payload(b: bytes) -> str | dict[str, str]:
    """A body as the trace writes it: text when it is UTF-8, else ``{"base64": ...}``."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode("ascii")}


def open_capture(path: str, **kwargs: Any) -> CaptureTrace | None:
    kind = sniff(path)
    return None if kind is None else CaptureTrace(path, kind, **kwargs)


def write_trace(packets: Iterable[dict[str, Any]], out: IO[str], fmt: str) -> int:
    """Write packets as a JSON array (one packet a line) or JSON Lines; return how many."""
    n = 0
    if fmt == "jsonl":
        for p in packets:
            out.write(json.dumps(p, ensure_ascii=False) + "\n")
            n += 1
        return n
    out.write("[")
    for p in packets:
        out.write(("\n  " if n == 0 else ",\n  ") + json.dumps(p, ensure_ascii=False))
        n += 1
    out.write("\n]\n" if n else "]\n")
    return n
