"""Synthetic traces for the benchmark: many HTTP streams, one request and one response each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO


def packets(streams: int, *, gap_ms: float = 0.0) -> Iterator[dict[str, Any]]:
    """``streams`` request/response pairs, each on its own connection: client ports 1024-61023 of
    one client address, then of the next (as many clients behind a few addresses look)."""
    for i in range(streams):
        client = i // 60000
        ip = f"10.1.{client >> 8}.{client & 0xFF}"
        port = 1024 + i % 60000
        yield {"sip": ip, "sp": port, "dip": "10.0.0.1", "dp": 443, "scheme": "https",
               "uri_path": f"/item/{i}", "method": "GET",
               "headers": {"user-agent": "bench/1", "x-n": str(i)},
               "forward_direction": True, "delta_ms": gap_ms}
        yield {"sip": "10.0.0.1", "sp": 443, "dip": ip, "dp": port,
               "headers": {"content-type": "text/plain"}, "forward_direction": False,
               "delta_ms": gap_ms, "body": "Hello World!"}


def write_jsonl(fh: TextIO, streams: int) -> int:
    n = 0
    for p in packets(streams):
        fh.write(json.dumps(p, separators=(",", ":")) + "\n")
        n += 1
    return n


def write_array(fh: TextIO, streams: int) -> int:
    n = 0
    fh.write("[\n")
    for p in packets(streams):
        fh.write(("," if n else "") + json.dumps(p, separators=(",", ":")) + "\n")
        n += 1
    fh.write("]\n")
    return n
