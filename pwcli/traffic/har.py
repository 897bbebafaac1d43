"""HAR 1.2 files (browsers' devtools, mitmproxy, proxies) as trace packets: an entry is a stream.

Addresses: a HAR records the server (``serverIPAddress``, the URL's port) but not the client, so
each connection gets a client on the loopback address of the server's family and a port of its own
(40000 up): entries with the same ``connection`` id share one, an entry without one has its own.
Timing: the request is sent at ``startedDateTime`` plus the ``blocked``, ``dns`` and ``connect``
timings; its response arrives ``send`` + ``wait`` later, body and all. On a shared connection
responses arrive in their requests' order (a response that the HAR shows earlier waits for the
one before it), as pwcli pairs them HTTP/1.1 style. HTTP/2 entries keep their pseudo-headers. An
entry without a response (aborted: no response, or status 0) is a request only.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engine.messages import DEFAULT_PORTS
from ..errors import TraceError
from .tally import Tally, Timed

FIRST_CLIENT_PORT = 40000


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Header(_Loose):
    name: str
    value: str


class PostData(_Loose):
    text: str | None = None
    encoding: str | None = None


class Content(_Loose):
    text: str | None = None
    encoding: str | None = None


class Request(_Loose):
    method: str
    url: str
    httpVersion: str = "HTTP/1.1"  # noqa: N815 - HAR's names
    headers: list[Header]
    postData: PostData | None = None  # noqa: N815


class Response(_Loose):
    status: int
    headers: list[Header] = Field(default_factory=list)
    content: Content | None = None


class Timings(_Loose):
    blocked: float | None = None
    dns: float | None = None
    connect: float | None = None
    send: float | None = None
    wait: float | None = None


class Entry(_Loose):
    startedDateTime: datetime  # noqa: N815
    request: Request
    response: Response | None = None
    timings: Timings = Field(default_factory=Timings)
    serverIPAddress: str | None = None  # noqa: N815
    connection: str | None = None


def har_packets(path: str, entries: list[Entry], tally: Tally) -> list[Timed]:
    """Every entry's packets with their times (seconds since the epoch), in time order."""
    events: list[tuple[float, int, Timed]] = []  # (time, order, packet)
    clients: dict[str, int] = {}
    last_answer: dict[str, float] = {}
    for i, e in enumerate(sorted(enumerate(entries), key=lambda x: _sent_at(x[1]))):
        index, entry = e
        conn = entry.connection if entry.connection is not None else f"entry {index}"
        if conn not in clients:
            clients[conn] = FIRST_CLIENT_PORT + len(clients) % 25000
            tally.connections += 1
        try:
            request, response = _packets(entry, clients[conn])
        except ValueError as exc:
            raise TraceError(str(exc), path=path, field=f"entries[{index}].request.url") from None
        sent = _sent_at(entry)
        events.append((sent, 2 * i, (request, sent)))
        tally.http += 1
        if response is not None:
            t = entry.timings
            answered = max(sent + (_ms(t.send) + _ms(t.wait)) / 1000, last_answer.get(conn, 0.0))
            last_answer[conn] = answered
            events.append((answered, 2 * i + 1, (response, answered)))
    events.sort(key=lambda ev: (ev[0], ev[1]))
    return [timed for _, _, timed in events]


def load_har(path: str) -> list[Entry]:
    """The entries of a HAR file, checked; TraceError (one line) when it is not one."""
    try:
        with open(path, "rb") as fh:
            raw = json.load(fh)
    except json.JSONDecodeError as exc:
        raise TraceError(f"not a HAR file: not JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read: {exc}", path=path) from None
    log = raw.get("log") if isinstance(raw, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise TraceError("not a HAR file: no log.entries list", path=path)
    entries = []
    for i, item in enumerate(log["entries"]):
        try:
            entries.append(Entry.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise TraceError(err["msg"].lower() if err["type"] == "missing" else err["msg"],
                             path=path, field=f"entries[{i}].{where}") from None
    return entries


def _ms(v: float | None) -> float:
    return v if v is not None and v > 0 else 0.0


def _sent_at(e: Entry) -> float:
    t = e.timings
    return e.startedDateTime.timestamp() + (_ms(t.blocked) + _ms(t.dns) + _ms(t.connect)) / 1000


def _packets(e: Entry, client_port: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    url = urlsplit(e.request.url)
    scheme = url.scheme.lower() if url.scheme.lower() in DEFAULT_PORTS else "http"
    port = url.port or DEFAULT_PORTS[scheme]
    server = _server_ip(e.serverIPAddress, url.hostname)
    client = "::1" if ":" in server else "127.0.0.1"
    headers = [[h.name, h.value] for h in e.request.headers]
    h2 = e.request.httpVersion.lower() in ("http/2", "http/2.0", "h2", "http/3", "h3")
    if not h2:
        headers = [[n, v] for n, v in headers if not n.startswith(":")]
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    request: dict[str, Any] = {"sip": client, "sp": client_port, "dip": server, "dp": port,
                               "forward_direction": True, "scheme": scheme,
                               "method": e.request.method, "uri_path": path, "headers": headers}
    if not any(n.lower() in ("host", ":authority") for n, _ in headers) and url.netloc:
        request["host"] = url.netloc.rpartition("@")[2]
    body = _body(e.request.postData)
    if body:
        request["body"] = body
    r = e.response
    if r is None or r.status == 0:
        return request, None
    response: dict[str, Any] = {"sip": server, "sp": port, "dip": client, "dp": client_port,
                                "forward_direction": False, "scheme": scheme, "status": r.status,
                                "headers": [[h.name, h.value] for h in r.headers]}
    body = _body(r.content)
    if body:
        response["body"] = body
    return request, response


def _server_ip(recorded: str | None, host: str | None) -> str:
    for candidate in (recorded, host):
        if candidate:
            try:
                return str(ipaddress.ip_address(candidate.strip("[]")))
            except ValueError:
                continue
    return "127.0.0.1"


def _body(part: PostData | Content | None) -> bytes:
    if part is None or not part.text:
        return b""
    if (part.encoding or "").lower() == "base64":
        try:
            return base64.b64decode(part.text, validate=False)
        except ValueError:
            return part.text.encode()
    return part.text.encode()
