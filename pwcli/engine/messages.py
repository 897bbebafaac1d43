"""Envoy's views of the trace's messages: headers as the HTTP codec presents them to a filter, and
the local reply Envoy builds (``source/common/http/utility.cc``: ``Utility::encodeLocalReply``)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from urllib.parse import quote

from ..events import LocalReply
from ..host.codec import Pairs
from ..host.contexts import Message
from ..trace import Packet

DEFAULT_PORTS = {"http": 80, "https": 443}


NO_BODY_STATUSES = {204, 304}  # an HTTP/1 response with these never carries a body
# Hop-by-hop headers Envoy takes off a request before the filters see it (its HTTP/1 codec and
# ConnectionManagerUtility::mutateRequestHeaders), with those the Connection header names, TE
# unless it is "trailers", and "Expect: 100-continue" (Envoy answers it itself); of a response's,
# the filters miss only keep-alive. Checked against
# Envoy in tests/envoy (the hop-by-hop probe).
REQUEST_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "upgrade",
                      "transfer-encoding"}
RESPONSE_HOP_BY_HOP = {"keep-alive"}


def request_headers(p: Packet, request_id: str | None = None) -> Pairs:
    """Headers as Envoy's HTTP/1 codec and connection manager present a request to the filter:
    ``:authority``, ``:path``, ``:method``, ``:scheme`` first (names lower-cased, ``host`` moved to
    ``:authority``), the trace's headers in order, then what Envoy adds before the filters when the
    trace has none (``request_id`` given): the body's framing as an HTTP/1 client sends it,
    ``x-forwarded-proto`` (the connection's scheme) and ``x-request-id``
    (``ConnectionManagerUtility::mutateRequestHeaders``)."""
    other = [(n.lower(), v) for n, v in p.headers or []]
    pseudo = {n: v for n, v in other if n.startswith(":")}
    rest = [(n, v) for n, v in other if not n.startswith(":")]
    host = next((v for n, v in rest if n == "host"), None)
    if host is not None:
        rest = [(n, v) for n, v in rest if n != "host"]  # Envoy's HTTP/1 codec moves it
    elif p.host is not None:
        host = p.host
    else:
        ip, port = p.server
        host = f"[{ip}]" if ":" in ip else ip
        if port != DEFAULT_PORTS.get(p.scheme):
            host += f":{port}"
    path = p.uri_path or "/"
    if p.query_params:
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                         for k, v in p.query_params.items())
        path += ("&" if "?" in path else "?") + query
    base = {":authority": host, ":path": path, ":method": p.method or "GET", ":scheme": p.scheme}
    base.update(pseudo)
    if request_id is not None:
        names = {n for n, _ in rest}
        rest = _without_hop_by_hop(rest)
        rest += framing(p, names)
        if "x-forwarded-proto" not in names:
            rest.append(("x-forwarded-proto", p.scheme))
        if "x-request-id" not in names:
            rest.append(("x-request-id", request_id))
    pairs = [(k.encode(), v.encode()) for k, v in base.items()]
    return pairs + [(n.encode(), v.encode()) for n, v in rest]


def response_headers(p: Packet, service_time_ms: int | None = None) -> Pairs:
    """Headers as Envoy presents an upstream response: ``:status`` first, names lower-cased, then
    (``service_time_ms`` given) the body's framing as an HTTP/1 server sends it and the router's
    ``x-envoy-upstream-service-time``."""
    other = [(n.lower(), v) for n, v in p.headers or []]
    status = next((v for n, v in other if n == ":status"), str(p.status))
    rest = [(n, v) for n, v in other if n != ":status"]
    if service_time_ms is not None:
        names = {n for n, _ in rest}
        rest = [(n, v) for n, v in rest if n not in RESPONSE_HOP_BY_HOP]
        # Envoy's HTTP/1 codec takes transfer-encoding aside while parsing: it comes last
        rest = [h for h in rest if h[0] != "transfer-encoding"] + \
            [h for h in rest if h[0] == "transfer-encoding"]
        if p.status not in NO_BODY_STATUSES:
            rest += framing(p, names, response=True)
        rest.append(("x-envoy-upstream-service-time", str(service_time_ms)))
    return [(b":status", status.encode())] + [(n.encode(), v.encode()) for n, v in rest]


def _without_hop_by_hop(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    nominated = {token.strip().lower() for n, v in headers if n == "connection"
                 for token in v.split(",")}
    return [(n, v) for n, v in headers
            if n not in REQUEST_HOP_BY_HOP and n not in nominated
            and not (n == "te" and v.strip().lower() != "trailers")
            and not (n == "expect" and v.strip().lower() == "100-continue")]


def framing(p: Packet, names: set[str], *, response: bool = False) -> list[tuple[str, str]]:
    """The HTTP/1 framing header a peer sends when the trace names none, as the filter sees it:
    ``content-length`` for a body in one packet (a response's even when empty); for a body in
    several packets or with trailers, a response's ``transfer-encoding: chunked`` (a request's is
    removed by the codec)."""
    if "content-length" in names or "transfer-encoding" in names:
        return []
    if not p.end_stream or p.trailers:
        # Envoy's HTTP/1 codec keeps a response's transfer-encoding but takes a request's away.
        return [("transfer-encoding", "chunked")] if response else []
    if p.body or response:
        return [("content-length", str(len(p.body or b"")))]
    return []


def request_id(seed: int, stream: int, rng: random.Random | None = None) -> str:
    """A version-4 UUID for ``x-request-id``, the same for the same seed and stream number.

    128 random bits from a generator seeded with ``"seed:stream"``, as ``uuid.UUID(int=...,
    version=4)`` makes them a UUID (version and variant bits set) and writes them. ``rng``: a
    generator to reseed instead of making one (the engine keeps one per replay)."""
    rng = rng if rng is not None else random.Random()
    rng.seed(f"{seed}:{stream}")
    n = rng.getrandbits(128)
    n = (n & ~(0xC000 << 48) | 0x8000 << 48) & ~(0xF000 << 64) | 4 << 76
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def local_reply_headers(lr: LocalReply) -> Pairs:
    """Envoy's encodeLocalReply: :status, the plugin's headers, content-length, content-type."""
    headers: Pairs = [(b":status", str(lr.status).encode())]
    headers += [(n.lower(), v) for n, v in lr.headers]
    names = {n for n, _ in headers}
    if lr.body:
        if b"content-length" not in names:
            headers.append((b"content-length", str(len(lr.body)).encode()))
        if b"content-type" not in names:
            headers.append((b"content-type", b"text/plain"))
    return headers


def pairs(headers: Iterable[tuple[str, str]] | None) -> Pairs:
    """A trace's ``[name, value]`` list as header-map pairs (names lower-cased, bytes)."""
    return [(n.lower().encode(), v.encode()) for n, v in headers or []]


def coalesce_body(m: Message) -> None:
    """On resume after a headers pause, Envoy hands the whole buffered body to one callback."""
    bodies = []
    while m.pending and m.pending[0][0] == "body":
        bodies.append(m.pending.popleft())
    if bodies:
        data = b"".join(b for _, b, _ in bodies)
        m.pending.appendleft(("body", data, bodies[-1][2]))
