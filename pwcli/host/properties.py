"""Properties as Envoy serves them, derived from the packet and the stream.

Encodings follow Envoy: strings raw, integers 8-byte little-endian, booleans one byte, timestamps and
durations int64 nanoseconds, string maps in the pairs format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..textutil import hostport
from .codec import encode_pairs, i64
from .contexts import StreamContext
from .headers import HeaderMap

# What pwcli serves, for the table in docs/trace.md: name -> where the value comes from.
SERVED: dict[str, str] = {
    "plugin_name": "--plugin-name (default: the root id)",
    "plugin_root_id": "--root-id / trace plugin.root_id",
    "plugin_vm_id": "--vm-id (default empty)",
    "source.address": "client ip:port of the stream's 5-tuple",
    "source.port": "client port (int64)",
    "destination.address": "server ip:port",
    "destination.port": "server port (int64)",
    "upstream.address": "server ip:port, once the request headers went past the filter",
    "upstream.port": "server port (int64), likewise",
    "connection.id": "connection number in the trace, from 1 (uint64)",
    "connection.mtls": "false",
    "connection.requested_server_name": "https: the request's host, without port; else empty",
    "request.path": ":path",
    "request.url_path": ":path without the query",
    "request.host": ":authority",
    "request.scheme": ":scheme",
    "request.method": ":method",
    "request.headers": "request headers (pairs)",
    "request.referer": "referer header",
    "request.useragent": "user-agent header",
    "request.id": "x-request-id header",
    "request.query": "query part of :path",
    "request.protocol": '"HTTP/1.1"',
    "request.time": "virtual time of the request's first packet (ns since epoch)",
    "request.duration": "virtual time from the first to the last request packet (ns), in on_log",
    "request.size": "request body bytes so far",
    "request.total_size": "request headers + body bytes so far",
    "response.code": ":status (int64)",
    "response.code_details": '"via_upstream", or the local reply details',
    "response.headers": "response headers (pairs)",
    "response.trailers": "response trailers (pairs)",
    "response.size": "response body bytes so far",
    "response.total_size": "response headers + body bytes so far",
}


# Properties whose value is an int64 (shown decoded in events).
INT_PROPERTIES = frozenset({
    "source.port", "destination.port", "upstream.port", "connection.id", "request.time",
    "request.duration", "request.size", "request.total_size", "response.code", "response.size",
    "response.total_size",
})


def encode_value(value: Any) -> bytes:
    """A trace-level or --property value in Envoy's encoding."""
    if isinstance(value, bool):
        return b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return i64(value)
    if isinstance(value, float):
        import struct

        return struct.pack("<d", value)
    if isinstance(value, dict):
        return encode_pairs([(str(k).encode(), str(v).encode()) for k, v in value.items()])
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _hostport(ip: str, port: int) -> bytes:
    return hostport(ip, port).encode()


EMPTY_MAP = b"\0\0\0\0"  # an empty map in the pairs format (a zero count), as Envoy answers


def _visible(s: StreamContext, msg_attr: str) -> HeaderMap | None:
    """A message's headers where Envoy's attributes see them: in its own headers callback (and
    while it is paused there) and in proxy_on_log, as the header maps themselves."""
    msg = getattr(s, msg_attr)
    return msg.headers if msg.headers_live or s.in_log else None


def _header(msg_attr: str, name: bytes) -> Callable[[StreamContext], bytes | None]:
    def get(s: StreamContext) -> bytes | None:
        m = _visible(s, msg_attr)
        return m.get(name) if m is not None else None

    return get


def _path_part(s: StreamContext, part: int) -> bytes | None:
    m = _visible(s, "req")
    path = m.get(b":path") if m is not None else None
    if path is None:
        return None
    head, sep, query = path.partition(b"?")
    return head if part == 0 else (query if sep else b"")


def _pairs(msg_attr: str, field: str) -> Callable[[StreamContext], bytes | None]:
    """A header map as pairs; where it is not seen, Envoy answers an empty map."""
    def get(s: StreamContext) -> bytes | None:
        m = _visible(s, msg_attr) if field == "headers" else getattr(getattr(s, msg_attr), field)
        return encode_pairs(m.pairs) if m is not None and m.pairs else EMPTY_MAP

    return get


def _total(msg_attr: str) -> Callable[[StreamContext], bytes | None]:
    def get(s: StreamContext) -> bytes | None:
        msg = getattr(s, msg_attr)
        if msg.headers is None:
            return i64(0) if msg_attr == "resp" else None
        return i64(msg.headers.byte_size() + len(msg.forwarded) + len(msg.body))

    return get


def _status(s: StreamContext) -> bytes | None:
    if s.resp.headers is None:
        return None
    raw = s.resp.headers.get(b":status")
    return i64(int(raw)) if raw is not None and raw.isdigit() else None


def _sni(s: StreamContext) -> bytes | None:
    """The TLS server name: none on a plain connection (Envoy answers an empty string)."""
    if s.info.get("scheme") != "https" or s.req.headers is None:
        return b""
    host = s.req.headers.get(b":authority") or b""
    if host.startswith(b"["):
        return host[1 : host.find(b"]")]
    return host.rsplit(b":", 1)[0] if b":" in host else host


def _upstream(s: StreamContext, value: bytes) -> bytes | None:
    """Known once the router has the request (its headers went past the filter)."""
    if s.result.kind == "http" and (not s.req.started or s.req.headers_live):
        return None
    return value


STREAM_PROPERTIES: dict[str, Callable[[StreamContext], bytes | None]] = {
    "source.address": lambda s: _hostport(*s.info["client"]),
    "source.port": lambda s: i64(s.info["client"][1]),
    "destination.address": lambda s: _hostport(*s.info["server"]),
    "destination.port": lambda s: i64(s.info["server"][1]),
    "upstream.address": lambda s: _upstream(s, _hostport(*s.info["server"])),
    "upstream.port": lambda s: _upstream(s, i64(s.info["server"][1])),
    "connection.id": lambda s: i64(s.info["connection"]),
    "connection.mtls": lambda s: b"\x00",
    "connection.requested_server_name": _sni,
    "request.path": _header("req", b":path"),
    "request.url_path": lambda s: _path_part(s, 0),
    "request.host": _header("req", b":authority"),
    "request.scheme": _header("req", b":scheme"),
    "request.method": _header("req", b":method"),
    "request.headers": _pairs("req", "headers"),
    "request.referer": _header("req", b"referer"),
    "request.useragent": _header("req", b"user-agent"),
    "request.id": _header("req", b"x-request-id"),
    "request.query": lambda s: _path_part(s, 1),
    "request.protocol": lambda s: b"HTTP/1.1" if s.result.kind == "http" else None,
    "request.time": lambda s: i64(s.info["start_epoch_ns"]) if s.result.kind == "http" else None,
    "request.duration": lambda s: (  # Envoy: once the stream is complete (proxy_on_log)
        i64(s.info["request_end_ns"] - s.info["start_ns"])
        if "request_end_ns" in s.info and s.in_log else None
    ),
    "request.size": lambda s: i64(len(s.req.forwarded) + len(s.req.body)),
    "request.total_size": _total("req"),
    "response.code": _status,
    "response.code_details": lambda s: (
        None
        if s.resp.headers is None
        else (s.result.local_reply.details.encode() if s.result.local_reply else b"via_upstream")
    ),
    "response.headers": _pairs("resp", "headers"),
    "response.trailers": _pairs("resp", "trailers"),
    "response.size": lambda s: i64(len(s.resp.forwarded) + len(s.resp.body)),
    "response.total_size": _total("resp"),
}
