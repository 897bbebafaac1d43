"""The trace: a JSON list of packets (proxy-wasm-cli's format, extended), validated with pydantic.

``load_trace(path)`` returns a ``Trace`` or raises ``TraceError`` with one line naming the file, the
packet index and the field. ``check_flow`` then pairs packets into connections and streams the way
the replay will, so a response with no request is reported before anything runs.
"""

from __future__ import annotations

import base64
import difflib
import functools
import ipaddress
import json
import math
import re
import sys
from collections import ChainMap
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import TraceError
from .expect_schema import StreamExpect, TraceExpect

TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
PSEUDO = re.compile(r"^:[a-z]+$")
MAX_TEXT = 64 << 20  # one body or payload: 64 MiB
MAX_DELTA_MS = 1e9  # one gap between packets: about 11.6 days of virtual time


def _err(kind: str, msg: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, msg, ctx)


def _port(v: Any) -> int:
    if isinstance(v, bool):
        raise _err("port", "port must be an integer 0-65535, got {v}", v=json.dumps(v))
    if isinstance(v, str):
        s = v.strip()
        if not s.isdigit():
            raise _err("port", "port must be an integer 0-65535, got {v}", v=json.dumps(v))
        v = int(s)
    if not isinstance(v, int):
        raise _err("port", "port must be an integer 0-65535, got {v}", v=json.dumps(v))
    if not 0 <= v <= 65535:
        raise _err("port", "port must be 0-65535, got {v}", v=v)
    return v


def _address(v: Any) -> str:
    if not isinstance(v, str):
        raise _err("address", "must be an IPv4 or IPv6 address string, got {v}", v=json.dumps(v))
    try:
        return _canonical_address(v)
    except ValueError:
        raise _err("address", "not an IPv4 or IPv6 address: {v}", v=json.dumps(v)) from None


@functools.lru_cache(maxsize=4096)  # a trace's packets name the same few addresses again and again
def _canonical_address(v: str) -> str:
    return sys.intern(str(ipaddress.ip_address(v.strip())))  # shared by every packet


def _bytes(v: Any) -> bytes:
    """Text (UTF-8) or {"base64": "..."}."""
    if isinstance(v, str):
        out = v.encode("utf-8")
    elif isinstance(v, dict) and set(v) == {"base64"} and isinstance(v["base64"], str):
        try:
            out = base64.b64decode(v["base64"], validate=True)
        except ValueError:
            raise _err("base64", "base64: not valid base64") from None
    else:
        raise _err("body", "must be a string or {b}", b='{"base64": "..."}')
    if len(out) > MAX_TEXT:
        raise _err("size", "too large ({n} bytes, at most {m})", n=len(out), m=MAX_TEXT)
    return out


def _header_list(v: Any) -> list[tuple[str, str]]:
    if isinstance(v, dict):
        items = list(v.items())
    elif isinstance(v, list):
        items = []
        for i, pair in enumerate(v):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _err("pair", "[{i}]: must be a [name, value] pair", i=i)
            items.append((pair[0], pair[1]))
    else:
        raise _err("headers", "must be an object or a list of [name, value] pairs")
    out = []
    for name, value in items:
        if not isinstance(name, str) or not (TOKEN.match(name) or PSEUDO.match(name)):
            raise _err("name", "invalid header name {n}", n=json.dumps(name))
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = json.dumps(value)
        if not isinstance(value, str):
            raise _err("value", "header {n}: value must be a string", n=json.dumps(name))
        if any(c in value for c in "\r\n\0"):
            raise _err("value", "header {n}: value contains CR, LF or NUL", n=json.dumps(name))
        out.append((name, value))
    return out


Port = Annotated[int, BeforeValidator(_port)]
Address = Annotated[str, BeforeValidator(_address)]
Payload = Annotated[bytes, BeforeValidator(_bytes)]
HeaderList = Annotated[list[tuple[str, str]], BeforeValidator(_header_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(cls.model_fields)
            for key in data:
                if key not in known:
                    near = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                    hint = f" (did you mean {near[0]!r}?)" if near else ""
                    raise _err("unknown", "unknown key {k}{h}", k=json.dumps(key), h=hint)
        return data


class Packet(_Strict):
    """One packet of the trace. ``forward_direction`` true means client -> server."""

    sip: Address
    sp: Port
    dip: Address
    dp: Port
    forward_direction: StrictBool
    delta_ms: float = Field(default=0, ge=0)
    protocol: Literal["tcp", "udp"] = "tcp"
    scheme: Literal["http", "https"] = "http"
    method: str | None = None
    uri_path: str | None = None
    query_params: dict[str, str] | None = None
    host: str | None = None
    headers: HeaderList | None = None
    body: Payload | None = None
    status: int = Field(default=200, ge=100, le=999)
    trailers: HeaderList | None = None
    end_stream: StrictBool = True
    data: Payload | None = None
    close: Literal["fin", "rst"] | None = None
    expect: StreamExpect | None = None

    @field_validator("method")
    @classmethod
    def _method(cls, v: str | None) -> str | None:
        if v is not None and not TOKEN.match(v):
            raise _err("method", "not an HTTP method token: {v}", v=json.dumps(v))
        return v

    @field_validator("uri_path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("/") or v == "*"):
            raise _err("path", "must start with '/', got {v}", v=json.dumps(v))
        if v is not None and any(c in v for c in " \r\n\0"):
            raise _err("path", "contains a space, CR, LF or NUL")
        return v

    @field_validator("delta_ms", mode="before")
    @classmethod
    def _delta(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _err("delta", "must be a number of milliseconds, got {v}", v=json.dumps(v))
        if not math.isfinite(v):
            raise _err("delta", "must be a finite number of milliseconds, got {v}", v=json.dumps(v))
        if v < 0:
            raise _err("delta", "must not be negative, got {v}", v=v)
        if v > MAX_DELTA_MS:
            raise _err("delta", "too large ({v} ms, at most {m})", v=v, m=int(MAX_DELTA_MS))
        return v

    @property
    def is_tcp(self) -> bool:
        return self.data is not None or self.close is not None

    @property
    def client(self) -> tuple[str, int]:
        return (self.sip, self.sp) if self.forward_direction else (self.dip, self.dp)

    @property
    def server(self) -> tuple[str, int]:
        return (self.dip, self.dp) if self.forward_direction else (self.sip, self.sp)

    @cached_property
    def key(self) -> tuple[str | int, ...]:
        """The canonical 5-tuple: client ip, client port, server ip, server port, protocol.

        Computed once per packet (the replay and the flow check both ask); a looped replay appends
        the loop number (``engine.replay.packets_of``)."""
        c, s = self.client, self.server
        return (c[0], c[1], s[0], s[1], self.protocol)


class PluginInputs(_Strict):
    """Trace-level plugin inputs, so a golden pins them; command-line options override them."""

    root_id: str | None = None
    configuration: str | None = None
    vm_configuration: str | None = None
    environment: dict[str, str] | None = None
    log_level: Literal["trace", "debug", "info", "warn", "error", "critical"] | None = None


class UpstreamResponse(_Strict):
    """A declared answer to ``proxy_http_call`` / gRPC calls to one upstream (cluster)."""

    status: int = Field(default=200, ge=100, le=999)
    headers: HeaderList | None = None
    body: Payload | None = None
    trailers: HeaderList | None = None
    delay_ms: float = Field(default=0, ge=0)
    # gRPC
    grpc_status: int | None = Field(default=None, ge=0, le=16)
    grpc_message: str | None = None
    initial_metadata: HeaderList | None = None
    messages: list[Payload] | None = None
    trailing_metadata: HeaderList | None = None
    fail: Literal["reset", "timeout"] | None = None


class Trace(_Strict):
    version: Literal[1] = 1
    packets: list[Packet]
    plugin: PluginInputs | None = None
    properties: dict[str, Any] | None = None
    upstreams: dict[str, UpstreamResponse | list[UpstreamResponse]] | None = None
    expect: TraceExpect | None = None
    source: str = Field(default="<trace>", exclude=True)


def load_trace(path: str | Path) -> Trace:
    """Read and validate a trace file. Raises TraceError with one line."""
    name = str(path)
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        raise TraceError("no such file", path=name) from None
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror or exc}", path=name) from None
    try:
        raw = json.loads(text)
    except UnicodeDecodeError:
        raise TraceError("not UTF-8 text", path=name) from None
    except RecursionError:
        raise TraceError("JSON nested too deeply", path=name) from None
    except json.JSONDecodeError as exc:
        raise TraceError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path=name
        ) from None
    return parse_trace(raw, source=name)


def parse_trace(raw: Any, *, source: str = "<trace>") -> Trace:
    """Validate an already-decoded trace (a list of packets or an object with ``packets``)."""
    if isinstance(raw, list):
        raw = {"packets": raw}
        listed = True
    elif isinstance(raw, dict):
        listed = False
        if "packets" not in raw:
            raise TraceError('an object trace needs a "packets" array', path=source)
    else:
        raise TraceError("a trace is a JSON array of packets or an object with packets", path=source)
    try:
        trace = Trace.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise _trace_error(exc, source, listed) from None
    except RecursionError:
        raise TraceError("JSON nested too deeply", path=source) from None
    check_flow(trace)
    return trace


def parse_packet(raw: Any, index: int, source: str) -> Packet:
    """One packet (a decoded JSON object) validated; errors name ``packet N`` and the field."""
    if isinstance(raw, Packet):
        return raw
    try:
        return Packet.model_validate(raw)
    except ValidationError as exc:
        err = _trace_error(exc, source, True)
        raise TraceError(err.reason, path=source, packet=index, field=err.field) from None
    except RecursionError:
        raise TraceError("JSON nested too deeply", path=source, packet=index) from None


def _trace_error(exc: ValidationError, source: str, listed: bool) -> TraceError:
    err = exc.errors(include_url=False)[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and (
        p.startswith("function-") or p.startswith("list[") or p in _MODEL_TAGS))]
    msg = err["msg"]
    ctx = err.get("ctx") or {}
    if err["type"] == "missing":
        msg = "required"
    elif err["type"] == "literal_error":
        msg = f"{msg}, got {_shown(err.get('input'))}"
    elif err["type"] in _TYPE_WORDS:
        msg = f"{_TYPE_WORDS[err['type']]}, got {_shown(err.get('input'))}"
    elif err["type"] in ("greater_than_equal", "less_than_equal") and "le" not in ctx:
        msg = f"must be at least {ctx.get('ge')}, got {_shown(err.get('input'))}"
    elif err["type"] == "less_than_equal":
        msg = f"must be at most {ctx.get('le')}, got {_shown(err.get('input'))}"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    packet = None
    if len(loc) >= 2 and loc[0] == "packets" and isinstance(loc[1], int):
        packet = loc[1]
        loc = loc[2:]
    elif loc and loc[0] == "packets" and listed:
        loc = loc[1:]
    field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
    return TraceError(msg, path=source, packet=packet, field=field or None)


_MODEL_TAGS = {"UpstreamResponse", "Packet", "PluginInputs"}
_TYPE_WORDS = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "int_parsing": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "list_type": "must be a JSON array",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "tuple_type": "must be a JSON array",
}


def _shown(value: Any) -> str:
    """A value as the trace spells it, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_flow(trace: Trace) -> None:
    """Pair packets as the replay will; a response with no request is an error naming the packet."""
    flow = FlowChecker(trace.source)
    for i, p in enumerate(trace.packets):
        flow.check(i, p)


class FlowChecker:
    """check_flow one packet at a time, for traces read incrementally.

    Memory stays flat: a connection's pairing state is kept only while it has a request or a
    response open; every connection seen keeps one small int (its number and whether it is TCP),
    which the replay reuses as the connection id."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen: Any = {}  # key -> id << 1 | tcp (a dict; a ChainMap in a fork)
        self.count = 0  # connections seen
        self.live: dict[tuple[str | int, ...], dict[str, Any]] = {}
        self.tcp_open: set[tuple[str | int, ...]] = set()
        self.opened = False  # the last packet checked opens a stream (the replay's pairing)

    def fork(self, source: str) -> FlowChecker:
        """A checker that starts where this one is and changes nothing of it: to check a batch of
        packets before any is applied. Costs what the open connections hold, not all seen."""
        fork = FlowChecker(source)
        fork.seen = ChainMap({}, self.seen)
        fork.count = self.count
        fork.live = {k: {"tcp": c["tcp"], "open": [dict(o) for o in c["open"]],
                         "req_open": c["req_open"]} for k, c in self.live.items()}
        fork.tcp_open = set(self.tcp_open)
        return fork

    def check(self, index: int, p: Packet) -> int:
        """Raise TraceError if ``p`` cannot be paired; return its connection id (from 1)."""
        key = p.key
        tcp = p.is_tcp
        tag = self.seen.get(key)
        if tag is None:  # recorded once the packet is known to pair: a bad one changes nothing
            tag = ((self.count + 1) << 1) | tcp
        if tcp or (tag & 1):
            if tcp != bool(tag & 1):
                raise TraceError("mixes TCP data packets and HTTP packets on one connection",
                                 path=self.source, packet=index)
            self._see(key, tag)
            self.opened = key not in self.tcp_open  # a TCP stream ends with its close packet
            if p.close is not None:
                self.tcp_open.discard(key)
            else:
                self.tcp_open.add(key)
            return tag >> 1
        conn = self.live.get(key)
        if conn is None:
            conn = {"tcp": False, "open": [], "req_open": False}
        opened = p.forward_direction and not conn["req_open"]
        fail = _flow_error(conn, p)
        if fail:
            raise TraceError(fail[1], path=self.source, packet=index, field=fail[0])
        self._see(key, tag)
        self.opened = opened
        if conn["open"] or conn["req_open"]:
            self.live[key] = conn
        else:
            self.live.pop(key, None)
        return tag >> 1

    def _see(self, key: tuple[str | int, ...], tag: int) -> None:
        if key not in self.seen:
            self.count += 1
        self.seen[key] = tag


def _flow_error(conn: dict[str, Any], p: Packet) -> tuple[str | None, str] | None:
    if conn["tcp"] != p.is_tcp:
        return None, "mixes TCP data packets and HTTP packets on one connection"
    if p.is_tcp:
        return None
    open_streams: list[dict[str, bool]] = conn["open"]
    if p.forward_direction:
        if not conn["req_open"]:
            for key in ("method", "uri_path"):
                if getattr(p, key) is None:
                    return key, "required on a packet that opens a request"
            open_streams.append({"resp_started": False})
        elif p.method is not None or p.headers is not None:
            return "headers", "the request is still open (end_stream false): send body or trailers"
        conn["req_open"] = not p.end_stream
        return None
    if not open_streams:
        return None, "a response with no request on its connection (client {}:{})".format(*p.client)
    stream = open_streams[0]
    if stream["resp_started"] and p.headers is not None:
        return "headers", "the response is still open (end_stream false): send body or trailers"
    stream["resp_started"] = True
    if p.end_stream:
        open_streams.pop(0)
    return None
