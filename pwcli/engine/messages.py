"""Envoy's views of the trace's messages: headers as the HTTP codec presents them to a filter, and
the local reply Envoy builds (``source/common/http/utility.cc``: ``Utility::encodeLocalReply``)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from ..events import LocalReply
from ..host.codec import Pairs
from ..host.contexts import Message
from ..trace import Packet

DEFAULT_PORTS = {"http": 80, "https": 443}


def request_headers(p: Packet) -> Pairs:
    """Headers as Envoy presents a request: pseudo-headers first, names lower-cased."""
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
    base = {":method": p.method or "GET", ":path": path, ":authority": host, ":scheme": p.scheme}
    base.update(pseudo)
    pairs = [(k.encode(), v.encode()) for k, v in base.items()]
    return pairs + [(n.encode(), v.encode()) for n, v in rest]


def response_headers(p: Packet) -> Pairs:
    """Headers as Envoy presents a response: ``:status`` first, names lower-cased."""
    other = [(n.lower(), v) for n, v in p.headers or []]
    status = next((v for n, v in other if n == ":status"), str(p.status))
    return [(b":status", status.encode())] + [
        (n.encode(), v.encode()) for n, v in other if n != ":status"
    ]


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
