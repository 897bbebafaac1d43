"""One request from the command line, curl style, as a one-stream trace.

``--request 'POST /api?x=1'`` (or a whole URL: ``'GET https://example.com:8443/x'``, which gives
the scheme, host and server port), ``-H 'name: value'`` in order, ``-d TEXT|@FILE`` for the body;
the upstream's answer with ``--response-status``, ``-R 'name: value'`` and ``--response-body``
(200 with no headers or body by default). The client is 10.0.0.2:40000 and the server 10.0.0.1 on
the URL's port (80 or 443 by default), as in proxy-wasm-cli's sample trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..cliargs import text_or_file
from ..engine.messages import DEFAULT_PORTS
from ..errors import InputError
from .convert import payload

CLIENT = ("10.0.0.2", 40000)
SERVER_IP = "10.0.0.1"


@dataclass
class OneRequest:
    request: str  # "METHOD TARGET"
    headers: list[str] = field(default_factory=list)
    data: str | None = None
    status: int = 200
    response_headers: list[str] = field(default_factory=list)
    response_body: str | None = None


def request_trace(r: OneRequest) -> dict[str, Any]:
    """The trace (object form) of one request and its response."""
    method, _, target = r.request.strip().partition(" ")
    target = target.strip()
    if not method or not target or " " in target:
        raise InputError(f"--request {r.request!r}: expected 'METHOD TARGET', "
                         "as in 'GET /path?x=1' or 'POST https://example.com/api'")
    scheme, host, port, path = "http", None, 80, target
    if "://" in target:
        url = urlsplit(target)
        if url.scheme not in DEFAULT_PORTS or not url.hostname:
            raise InputError(f"--request {r.request!r}: only http:// and https:// URLs")
        scheme = url.scheme
        try:
            port = url.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise InputError(f"--request {r.request!r}: bad port in the URL") from None
        host = url.netloc.rpartition("@")[2]
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    elif not target.startswith("/"):
        raise InputError(f"--request {r.request!r}: the target is a path ('/...') or a URL")
    req: dict[str, Any] = {"sip": CLIENT[0], "sp": CLIENT[1], "dip": SERVER_IP, "dp": port,
                           "forward_direction": True, "delta_ms": 0, "scheme": scheme,
                           "method": method, "uri_path": path,
                           "headers": _headers(r.headers, "-H")}
    if host is not None:
        req["host"] = host
    body = text_or_file(r.data, "-d") or b""
    if body:
        req["body"] = payload(body)
    resp: dict[str, Any] = {"sip": SERVER_IP, "sp": port, "dip": CLIENT[0], "dp": CLIENT[1],
                            "forward_direction": False, "delta_ms": 0, "scheme": scheme,
                            "status": r.status,
                            "headers": _headers(r.response_headers, "--response-header")}
    body = text_or_file(r.response_body, "--response-body") or b""
    if body:
        resp["body"] = payload(body)
    return {"version": 1, "packets": [req, resp]}


def _headers(items: list[str], option: str) -> list[list[str]]:
    out = []
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise InputError(f"{option} {item!r}: expected 'name: value'")
        out.append([name.strip(), value.strip()])
    return out
