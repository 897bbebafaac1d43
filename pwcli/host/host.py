"""Host: the proxy-wasm host functions in Python values, one method per ABI function.

Methods carry the spec's import names, take decoded arguments and return a ``Status`` (and values for
out-parameters); ``imports.py`` is the only code that touches guest memory. Every call is recorded as
an event. Where Envoy (through proxy-wasm-cpp-host) answers in a particular way, so does this host
(docs/semantics.md; tests/envoy checks it against Envoy); each deviation from the bare spec is
commented.
"""

from __future__ import annotations

import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..events import Event, EventLog, HeaderChange, LocalReply
from ..textutil import preview as _preview
from ..textutil import text as _text
from .codec import Pairs, split_path
from .contexts import Context, Message, RootContext, StreamContext
from .effects import (
    CalloutStarted,
    Effect,
    LocalReplySent,
    QueueReady,
    StreamClosed,
    StreamResumed,
    TickPeriodSet,
)
from .headers import HeaderMap
from .properties import INT_PROPERTIES, STREAM_PROPERTIES
from .spec import (
    V010,
    BufferType,
    LogLevel,
    MapType,
    MetricType,
    Status,
    StreamType,
    enum_name,
)

OK, NOT_FOUND, BAD_ARGUMENT = Status.OK, Status.NOT_FOUND, Status.BAD_ARGUMENT
_STATUS_NAMES: dict[int, str] = {int(s): s.name for s in Status}
_LEVEL_NAMES: dict[int, str] = {int(lvl): lvl.name.lower() for lvl in LogLevel}
# Plain ints for the hot path: an IntEnum member lookup costs a descriptor call each time.
_MT_HTTP_REQUEST_HEADERS = int(MapType.HTTP_REQUEST_HEADERS)
_MT_HTTP_RESPONSE_HEADERS = int(MapType.HTTP_RESPONSE_HEADERS)
_MT_HTTP_REQUEST_TRAILERS = int(MapType.HTTP_REQUEST_TRAILERS)
_MT_HTTP_CALL_RESPONSE_TRAILERS = int(MapType.HTTP_CALL_RESPONSE_TRAILERS)
_MT_GRPC_CALL_INITIAL_METADATA = int(MapType.GRPC_CALL_INITIAL_METADATA)
_LL_CRITICAL = int(LogLevel.CRITICAL)
_BT_HTTP_REQUEST_BODY = int(BufferType.HTTP_REQUEST_BODY)
_BT_HTTP_RESPONSE_BODY = int(BufferType.HTTP_RESPONSE_BODY)
_BT_MAX = int(max(BufferType))
CEL_AND_SIGNATURES = {"expr_create", "expr_evaluate", "expr_delete", "verify_signature", "sign"}
# A stream's own buffers: Envoy reads them as empty where they are not available.
STREAM_BUFFERS = {int(BufferType.HTTP_REQUEST_BODY), int(BufferType.HTTP_RESPONSE_BODY),
                  int(BufferType.DOWNSTREAM_DATA), int(BufferType.UPSTREAM_DATA)}
EPOCH_2024_NS = 1_704_067_200 * 1_000_000_000


@dataclass
class HostOptions:
    root_id: str = ""
    vm_id: str = ""
    plugin_name: str | None = None
    configuration: bytes = b""
    vm_configuration: bytes = b""
    environment: dict[str, str] = field(default_factory=dict)
    log_level: int = LogLevel.INFO
    seed: int = 0
    start_epoch_ns: int = EPOCH_2024_NS
    properties: dict[tuple[str, ...], bytes] = field(default_factory=dict)
    upstreams: dict[str, list[Any]] = field(default_factory=dict)
    lenient: bool = False


@dataclass
class Metric:
    id: int
    type: MetricType
    name: str
    value: int = 0
    samples: list[int] = field(default_factory=list)


class SharedStore(Protocol):
    """What a host asks of the shared data and queues; ``SharedState`` in one process, or another
    process serving them (pwcli.workers)."""

    def get_data(self, key: bytes) -> tuple[bytes, int] | None: ...
    def set_data(self, key: bytes, value: bytes, cas: int) -> bool: ...
    def register_queue(self, vm_id: str, name: bytes, owner: Host | None) -> int: ...
    def resolve_queue(self, vm_id: str, name: bytes) -> int | None: ...
    def enqueue(self, qid: int, value: bytes) -> bool: ...
    def dequeue(self, qid: int) -> tuple[bool, bytes | None]: ...


class SharedState:
    """Shared data and queues: per VM id, shared across the VMs of one replay.

    Hosts use the methods of ``SharedStore`` only, so another process can serve them."""

    def __init__(self) -> None:
        self.data: dict[bytes, tuple[bytes, int]] = {}
        self.queues: dict[int, deque[bytes]] = {}
        self.queue_names: dict[tuple[str, bytes], int] = {}
        self.queue_owner: dict[int, Host | None] = {}
        self.next_cas = 1
        self.next_queue = 1

    def get_data(self, key: bytes) -> tuple[bytes, int] | None:
        """(value, cas) or None."""
        return self.data.get(key)

    def set_data(self, key: bytes, value: bytes, cas: int) -> bool:
        """False on a CAS mismatch (nothing written)."""
        entry = self.data.get(key)
        if cas and entry is not None and entry[1] != cas:
            return False
        self.data[key] = (value, self.next_cas)
        self.next_cas += 1
        return True

    def register_queue(self, vm_id: str, name: bytes, owner: Host | None) -> int:
        """The queue's id; ``owner`` is told when it is ready (None: its owner is elsewhere)."""
        key = (vm_id, name)
        qid = self.queue_names.get(key)
        if qid is None:
            qid = self.next_queue
            self.next_queue += 1
            self.queue_names[key] = qid
            self.queues[qid] = deque()
        self.queue_owner[qid] = owner
        return qid

    def resolve_queue(self, vm_id: str, name: bytes) -> int | None:
        return self.queue_names.get((vm_id, name))

    def enqueue(self, qid: int, value: bytes) -> bool:
        """False when there is no such queue; tells the owner's host the queue is ready."""
        q = self.queues.get(qid)
        if q is None:
            return False
        q.append(value)
        owner = self.queue_owner.get(qid)
        if owner is not None:
            owner.effects.append(QueueReady(qid))
        return True

    def dequeue(self, qid: int) -> tuple[bool, bytes | None]:
        """(False, None): no such queue; (True, None): empty; (True, value)."""
        q = self.queues.get(qid)
        if q is None:
            return False, None
        return True, (q.popleft() if q else None)


@dataclass
class Callout:
    """An http or gRPC call the plugin made; the replay schedules its answer."""

    token: int
    kind: str  # "http" | "grpc" | "grpc_stream"
    upstream: str
    ctx: int
    headers: Pairs
    body: bytes
    trailers: Pairs
    timeout_ms: int
    t_ns: int
    response: Any = None  # trace.UpstreamResponse or None
    service: str = ""
    method: str = ""
    sent: list[bytes] = field(default_factory=list)
    closed: bool = False
    cancelled: bool = False  # cancelled, or a unary gRPC call closed: its answer is dropped


class Host:
    """One VM's host. The replay sets ``now_ns`` and the running callback; plugins call the rest."""

    def __init__(self, version: str, options: HostOptions, shared: SharedStore | None = None):
        self.version = version
        self.opts = options
        self.shared: SharedStore = shared or SharedState()
        self.now_ns = 0
        self.events: EventLog = []
        self.sink: Callable[[Event], None] | None = None
        self.held: list[Event] | None = None  # events of the running callback, for the sink
        self.log_counts: Counter[str] = Counter()
        self.contexts: dict[int, Context] = {}
        self.root: RootContext | None = None
        self.current: Context | None = None
        self.effective: Context | None = None
        self.callback: str | None = None
        self.restricted: str | None = None  # "allocator" | "startup" while those run
        self.oob_maps: dict[int, HeaderMap] = {}
        self.oob_buffers: dict[int, bytes] = {}
        self.metrics: dict[int, Metric] = {}
        self.metric_names: dict[tuple[int, str], int] = {}
        self.callouts: dict[int, Callout] = {}
        self.effects: list[Effect] = []  # what the running callback asked for: the engine applies it
        self.next_token = 1

    # -- recording --------------------------------------------------------------------------
    def ctx(self) -> Context | None:
        return self.effective or self.current

    def record(
        self, kind: str, name: str, args: dict[str, Any], result: Any = None,
        ctx: Context | None = None,
    ) -> Event:
        c = ctx or self.effective or self.current
        if c is None:
            ev = Event(self.now_ns, 0, None, kind, name, args, result)
        else:
            ev = Event(self.now_ns, c.id, c.result.index if isinstance(c, StreamContext) else None,
                       kind, name, args, result)
        self.events.append(ev)
        if self.sink is not None:
            if self.held is not None:
                self.held.append(ev)  # inside a callback: sent once its result is known
            else:
                self.sink(ev)
        return ev

    def release(self) -> None:
        """Send the events held during a callback to the sink (the callback's own first)."""
        held, self.held = self.held, None
        if held and self.sink is not None:
            for ev in held:
                self.sink(ev)

    def _rec(self, name: str, args: dict[str, Any], status: int, result: Any = None) -> int:
        res: Any = _STATUS_NAMES.get(status, status)
        if result is not None:
            res = {"status": res, "value": result}
        self.record("hostcall", name, args, res)
        return status

    # -- logging and time -------------------------------------------------------------------
    def proxy_log(self, level: int, message: bytes) -> int:
        if level > _LL_CRITICAL:
            return self._rec("proxy_log", {"level": level, "message": _text(message)}, BAD_ARGUMENT)
        self.log(level, _text(message))
        return OK

    def log(self, level: int, message: str) -> None:
        name = _LEVEL_NAMES.get(level) or LogLevel(level).name.lower()
        self.log_counts[name] += 1
        if level >= self.opts.log_level:
            self.record("log", name, {"message": message})

    def proxy_get_log_level(self) -> tuple[int, int]:
        self._rec("proxy_get_log_level", {}, OK, LogLevel(self.opts.log_level).name.lower())
        return OK, self.opts.log_level

    def wall_ns(self) -> int:
        return self.opts.start_epoch_ns + self.now_ns

    def proxy_get_current_time_nanoseconds(self) -> tuple[int, int]:
        now = self.wall_ns()
        self._rec("proxy_get_current_time_nanoseconds", {}, OK, now)
        return OK, now

    def proxy_set_tick_period_milliseconds(self, period: int) -> int:
        # cpp-host: always the root context's timer, whatever context calls it.
        if self.root is None:  # start-up code under --lenient: there is no root context yet
            return self._rec("proxy_set_tick_period_milliseconds", {"period_ms": period},
                             BAD_ARGUMENT)
        self.root.tick_period_ms = period
        self.effects.append(TickPeriodSet(period))
        return self._rec("proxy_set_tick_period_milliseconds", {"period_ms": period}, OK)

    # -- contexts ---------------------------------------------------------------------------
    def proxy_set_effective_context(self, context_id: int) -> int:
        target = self.contexts.get(context_id)
        if target is None:
            return self._rec("proxy_set_effective_context", {"context_id": context_id}, BAD_ARGUMENT)
        self.effective = target
        return self._rec("proxy_set_effective_context", {"context_id": context_id}, OK)

    def proxy_done(self) -> int:
        # cpp-host's WasmBase::done answers only a root context whose proxy_on_done returned false
        # while its VM shuts down; pwcli never shuts a VM down mid-run, and a stream context's
        # delete never waits (Envoy's Context::onDestroy): always NOT_FOUND.
        return self._rec("proxy_done", {}, NOT_FOUND)

    def proxy_get_status(self) -> tuple[int, int, bytes]:
        # Envoy's Context::getStatus: the context's last status (set by a callout's failure or a
        # gRPC close), OK with 0 and "" before any.
        c = self.ctx()
        code, msg = c.status if c is not None else (0, b"")
        self._rec("proxy_get_status", {}, OK, {"code": code, "message": _text(msg)})
        return OK, code, msg

    # -- configuration (0.1.0) ----------------------------------------------------------------
    def proxy_get_configuration(self) -> tuple[int, bytes]:
        data = self.oob_buffers.get(BufferType.PLUGIN_CONFIGURATION)
        if data is None:
            data = self.oob_buffers.get(BufferType.VM_CONFIGURATION)
        if data is None:
            self._rec("proxy_get_configuration", {}, NOT_FOUND)
            return NOT_FOUND, b""
        self._rec("proxy_get_configuration", {}, OK, _text(data))
        return OK, data

    # -- buffers ----------------------------------------------------------------------------
    def _buffer(self, btype: int) -> tuple[Message | None, bytes | bytearray | None, str]:
        """The buffer of type ``btype`` live in this callback: (owning message, data, where)."""
        if btype in self.oob_buffers:
            return None, self.oob_buffers[btype], "oob"
        c = self.ctx()
        if isinstance(c, StreamContext):
            if btype == _BT_HTTP_REQUEST_BODY and c.req.body_live:
                return c.req, c.req.body, "req"
            if btype == _BT_HTTP_RESPONSE_BODY and c.resp.body_live:
                return c.resp, c.resp.body, "resp"
            if btype == BufferType.DOWNSTREAM_DATA and c.tcp_down_live:
                return None, c.tcp_down, "down"
            if btype == BufferType.UPSTREAM_DATA and c.tcp_up_live:
                return None, c.tcp_up, "up"
        if btype == BufferType.VM_CONFIGURATION and self.version != V010:
            # Envoy serves the VM configuration at any time.
            return None, self.opts.vm_configuration, "oob"
        return None, None, ""

    def proxy_get_buffer_bytes(self, btype: int, start: int, max_size: int) -> tuple[int, bytes]:
        args = {"buffer": enum_name(BufferType, btype), "start": start, "max_size": max_size}
        if btype > _BT_MAX:
            self._rec("proxy_get_buffer_bytes", args, BAD_ARGUMENT)
            return BAD_ARGUMENT, b""
        _, data, _ = self._buffer(btype)
        if data is None and btype not in STREAM_BUFFERS:
            self._rec("proxy_get_buffer_bytes", args, NOT_FOUND)
            return NOT_FOUND, b""
        # Envoy: a stream's body or data not available here reads as empty, and so does a start
        # past the end (Context::getBuffer, then a clamped copy); both answer OK.
        out = bytes(data[start : start + max_size]) if data is not None else b""
        self._rec("proxy_get_buffer_bytes", args, OK, _preview(out))
        return OK, out

    def proxy_get_buffer_status(self, btype: int) -> tuple[int, int, int]:
        args = {"buffer": enum_name(BufferType, btype)}
        if btype > _BT_MAX:
            self._rec("proxy_get_buffer_status", args, BAD_ARGUMENT)
            return BAD_ARGUMENT, 0, 0
        msg, data, _ = self._buffer(btype)
        if data is None and btype in STREAM_BUFFERS:
            data = b""  # Envoy: an empty buffer, as proxy_get_buffer_bytes reads it
        if data is None:
            self._rec("proxy_get_buffer_status", args, NOT_FOUND)
            return NOT_FOUND, 0, 0
        self._rec("proxy_get_buffer_status", args, OK, {"size": len(data), "flags": 0})
        return OK, len(data), 0  # cpp-host always answers flags 0

    def proxy_set_buffer_bytes(self, btype: int, start: int, size: int, data: bytes) -> int:
        args = {
            "buffer": enum_name(BufferType, btype),
            "start": start,
            "size": size,
            "data": _preview(data),
        }
        if btype > _BT_MAX:
            return self._rec("proxy_set_buffer_bytes", args, BAD_ARGUMENT)
        msg, buf, where = self._buffer(btype)
        if buf is None:  # Envoy: nothing to write to here
            return self._rec("proxy_set_buffer_bytes", args, BAD_ARGUMENT)
        if not isinstance(buf, bytearray):  # configuration, http-call body, ...: read-only
            return self._rec("proxy_set_buffer_bytes", args, BAD_ARGUMENT)
        before = bytes(buf)
        # Envoy's Buffer::copyFrom: start 0 drops `size` bytes and prepends; start at
        # or past the end appends; anything else is BAD_ARGUMENT.
        if start == 0:
            del buf[:size]
            buf[:0] = data
        elif start >= len(buf):
            buf.extend(data)
        else:
            return self._rec("proxy_set_buffer_bytes", args, BAD_ARGUMENT)
        c = self.ctx()
        if isinstance(c, StreamContext):
            target = c.result.request if where == "req" else c.result.response
            if where in ("req", "resp"):
                target.body_changes.append(
                    {"t_ns": self.now_ns, "before": _preview(before), "after": _preview(bytes(buf))}
                )
        return self._rec("proxy_set_buffer_bytes", args, OK)

    # -- header maps ------------------------------------------------------------------------
    def _map(self, mtype: int, write: bool) -> HeaderMap | None:
        """The map reachable now, as Envoy decides; None means BAD_ARGUMENT."""
        if mtype >= _MT_GRPC_CALL_INITIAL_METADATA:
            return None if write else self.oob_maps.get(mtype)
        c = self.ctx()
        if not isinstance(c, StreamContext):
            return None
        msg = c.req if mtype <= _MT_HTTP_REQUEST_TRAILERS else c.resp
        if mtype == _MT_HTTP_REQUEST_HEADERS or mtype == _MT_HTTP_RESPONSE_HEADERS:
            if msg.headers_live or (c.in_log and not write):
                return msg.headers
            return None
        if msg.trailers_live or (c.in_log and not write):
            return msg.trailers
        if write and msg.body_live and msg.end_of_stream and msg.trailers is None:
            # Envoy lets the last body callback add trailers (addDecodedTrailers).
            msg.trailers = HeaderMap()
            msg.trailers_live = True
            return msg.trailers
        return None

    def _change(self, mtype: int, op: str, name: bytes, before: bytes | None, after: bytes | None):
        c = self.ctx()
        if isinstance(c, StreamContext):
            c.result.changes.append(
                HeaderChange(
                    enum_name(MapType, mtype).removeprefix("http_"),
                    op,
                    _text(name.lower()),
                    None if before is None else _text(before),
                    None if after is None else _text(after),
                    self.now_ns,
                )
            )

    def proxy_get_header_map_size(self, mtype: int) -> tuple[int, int]:
        args = {"map": _map_name(mtype)}
        m = self._map(mtype, False) if mtype <= _MT_HTTP_CALL_RESPONSE_TRAILERS else None
        if m is None:
            self._rec("proxy_get_header_map_size", args, BAD_ARGUMENT)
            return BAD_ARGUMENT, 0
        self._rec("proxy_get_header_map_size", args, OK, m.byte_size())
        return OK, m.byte_size()

    def proxy_get_header_map_pairs(self, mtype: int) -> tuple[int, Pairs]:
        args = {"map": _map_name(mtype)}
        if mtype > _MT_HTTP_CALL_RESPONSE_TRAILERS:
            self._rec("proxy_get_header_map_pairs", args, BAD_ARGUMENT)
            return BAD_ARGUMENT, []
        m = self._map(mtype, False)
        if m is None:  # Envoy's getHeaderMapPairs: a map not available here has no pairs
            self._rec("proxy_get_header_map_pairs", args, OK, "0 pairs")
            return OK, []
        self._rec("proxy_get_header_map_pairs", args, OK, f"{len(m)} pairs")
        return OK, m.pairs

    def proxy_set_header_map_pairs(self, mtype: int, pairs: Pairs | None) -> int:
        args: dict[str, Any] = {"map": _map_name(mtype)}
        m = self._map(mtype, True) if mtype <= _MT_HTTP_CALL_RESPONSE_TRAILERS else None
        if m is None:
            return self._rec("proxy_set_header_map_pairs", args, BAD_ARGUMENT)
        pairs = pairs or []  # cpp-host: malformed pairs decode to an empty map
        args["pairs"] = [[_text(n), _text(v)] for n, v in pairs]
        before = {n for n, _ in m.pairs}
        m.set_pairs(pairs)
        after = {n for n, _ in m.pairs}
        for name in sorted(before - after):
            self._change(mtype, "remove", name, b"", None)
        for name, value in m.pairs:
            self._change(mtype, "set", name, None, value)
        return self._rec("proxy_set_header_map_pairs", args, OK)

    def proxy_get_header_map_value(self, mtype: int, key: bytes) -> tuple[int, bytes]:
        args = {"map": _map_name(mtype), "key": _text(key)}
        m = self._map(mtype, False) if mtype <= _MT_HTTP_CALL_RESPONSE_TRAILERS else None
        if m is None:
            self._rec("proxy_get_header_map_value", args, BAD_ARGUMENT)
            return BAD_ARGUMENT, b""
        value = m.get(key)
        if value is None:
            if self.version == V010:  # 0.1.0: a missing key is OK with an empty value
                self._rec("proxy_get_header_map_value", args, OK, "")
                return OK, b""
            self._rec("proxy_get_header_map_value", args, NOT_FOUND)
            return NOT_FOUND, b""
        self._rec("proxy_get_header_map_value", args, OK, _text(value))
        return OK, value

    def proxy_add_header_map_value(self, mtype: int, key: bytes, value: bytes) -> int:
        args = {"map": _map_name(mtype), "key": _text(key), "value": _text(value)}
        m = self._map(mtype, True) if mtype <= _MT_HTTP_CALL_RESPONSE_TRAILERS else None
        if m is None:
            return self._rec("proxy_add_header_map_value", args, BAD_ARGUMENT)
        m.add(key, value)
        self._change(mtype, "add", key, None, value)
        return self._rec("proxy_add_header_map_value", args, OK)

    def proxy_replace_header_map_value(self, mtype: int, key: bytes, value: bytes) -> int:
        args = {"map": _map_name(mtype), "key": _text(key), "value": _text(value)}
        m = self._map(mtype, True) if mtype <= _MT_HTTP_CALL_RESPONSE_TRAILERS else None
        if m is None:
            return self._rec("proxy_replace_header_map_value", args, BAD_ARGUMENT)
        before = m.get(key)
        m.replace(key, value)
        self._change(mtype, "replace" if before is not None else "add", key, before, value)
        return self._rec("proxy_replace_header_map_value", args, OK)

    def proxy_remove_header_map_value(self, mtype: int, key: bytes) -> int:
        args = {"map": _map_name(mtype), "key": _text(key)}
        m = self._map(mtype, True) if mtype <= _MT_HTTP_CALL_RESPONSE_TRAILERS else None
        if m is None:
            return self._rec("proxy_remove_header_map_value", args, BAD_ARGUMENT)
        before = m.get(key)
        if m.remove(key):
            self._change(mtype, "remove", key, before, None)
        return self._rec("proxy_remove_header_map_value", args, OK)  # OK even if absent

    # -- stream control ---------------------------------------------------------------------
    def proxy_continue_stream(self, stype: int) -> int:
        if stype == StreamType.UPSTREAM:  # Envoy's continueStream cannot resume the upstream side
            return self._rec("proxy_continue_stream", {"stream": "upstream"}, Status.UNIMPLEMENTED)
        return self._stream_op("proxy_continue_stream", stype, "resume")

    def proxy_close_stream(self, stype: int) -> int:
        return self._stream_op("proxy_close_stream", stype, "close")

    def proxy_continue_request(self) -> int:
        return self._stream_op("proxy_continue_request", StreamType.HTTP_REQUEST, "resume", False)

    def proxy_continue_response(self) -> int:
        return self._stream_op("proxy_continue_response", StreamType.HTTP_RESPONSE, "resume", False)

    def _stream_op(self, name: str, stype: int, what: str, show_type: bool = True) -> int:
        args = {"stream": enum_name(StreamType, stype)} if show_type else {}
        if stype > StreamType.UPSTREAM:
            return self._rec(name, args, BAD_ARGUMENT)
        c = self.ctx()
        if isinstance(c, RootContext):  # Envoy: OK, and no stream to act on
            return self._rec(name, args, OK)
        if not isinstance(c, StreamContext):
            return self._rec(name, args, NOT_FOUND)
        self.effects.append(StreamResumed(c, stype) if what == "resume" else StreamClosed(c, stype))
        return self._rec(name, args, OK)

    def proxy_clear_route_cache(self) -> int:
        return self._rec("proxy_clear_route_cache", {}, OK)

    def proxy_send_local_response(
        self,
        status: int,
        details: bytes,
        body: bytes,
        headers: Pairs | None,
        grpc_status: int,
    ) -> int:
        # Envoy: only 0..16 is a gRPC status; anything else (the SDKs' -1) means "not gRPC".
        grpc = grpc_status if 0 <= grpc_status <= 16 else None
        args = {
            "status": status,
            "details": _text(details),
            "body": _preview(body),
            "headers": [[_text(n), _text(v)] for n, v in headers or []],
            "grpc_status": grpc,
        }
        c = self.ctx()
        if isinstance(c, RootContext):  # Envoy: OK, and nothing to answer
            return self._rec("proxy_send_local_response", args, OK)
        if not isinstance(c, StreamContext) or c.finished:
            return self._rec("proxy_send_local_response", args, NOT_FOUND)
        # Envoy defers the reply until the callback returns.
        c.local_reply = LocalReply(
            status, _text(details), body, list(headers or []), grpc, self.callback or "", self.now_ns
        )
        self.effects.append(LocalReplySent(c, c.local_reply))
        return self._rec("proxy_send_local_response", args, OK)

    # -- properties -------------------------------------------------------------------------
    def proxy_get_property(self, path: bytes) -> tuple[int, bytes]:
        segs = split_path(path)
        name = ".".join(segs)
        value = self._property(segs)
        if value is None:
            self._rec("proxy_get_property", {"path": name}, NOT_FOUND)
            return NOT_FOUND, b""
        shown: Any = _preview(value)
        if name in INT_PROPERTIES and len(value) == 8:
            shown = int.from_bytes(value, "little", signed=True)
        self._rec("proxy_get_property", {"path": name}, OK, shown)
        return OK, value

    def _property(self, segs: tuple[str, ...]) -> bytes | None:
        c = self.ctx()
        if c is not None and segs in c.properties:
            return c.properties[segs]
        if self.root is not None and segs in self.root.properties:
            return self.root.properties[segs]
        if segs in self.opts.properties:
            return self.opts.properties[segs]
        if any("." in seg for seg in segs):
            return None  # Envoy splits a path on NUL only: "source.address" is one unknown name
        name = ".".join(segs)
        if name == "plugin_root_id":
            return self.opts.root_id.encode()
        if name == "plugin_vm_id":
            return self.opts.vm_id.encode()
        if name == "plugin_name":
            return (self.opts.plugin_name or self.opts.root_id).encode()
        if isinstance(c, StreamContext):
            getter = STREAM_PROPERTIES.get(name)
            if getter is not None:
                return getter(c)
        return None

    def proxy_set_property(self, path: bytes, value: bytes) -> int:
        segs = split_path(path)
        c = self.ctx()
        args = {"path": ".".join(segs), "value": _preview(value)}
        if c is None:
            return self._rec("proxy_set_property", args, BAD_ARGUMENT)
        if c.is_root:  # Envoy's setProperty needs a stream's filter state
            return self._rec("proxy_set_property", args, NOT_FOUND)
        c.properties[segs] = value
        return self._rec("proxy_set_property", args, OK)

    def proxy_call_foreign_function(self, name: bytes, args_: bytes) -> tuple[int, bytes]:
        """The foreign functions Envoy registers (source/extensions/common/wasm/foreign.cc)."""
        fname = _text(name)
        status, out = OK, b""
        if fname == "compress":
            out = zlib.compress(args_)
        elif fname == "uncompress":
            try:
                out = zlib.decompress(args_)
            except zlib.error:
                status = Status.SERIALIZATION_FAILURE
        elif fname in ("clear_route_cache", "declare_property"):
            pass  # nothing pwcli's replay would show: properties need no declaration here
        elif fname in CEL_AND_SIGNATURES:
            # Envoy parses their protobuf arguments: empty or unparsable ones are BAD_ARGUMENT;
            # pwcli evaluates no CEL and checks no signature, which it says.
            status = BAD_ARGUMENT if not args_ else Status.UNIMPLEMENTED
        else:
            status = NOT_FOUND
        result: Any = _preview(out) if status == OK and out else None
        self._rec("proxy_call_foreign_function", {"name": fname, "args": _preview(args_)}, status,
                  result)
        return status, out

    # -- shared data and queues -----------------------------------------------------------
    def proxy_get_shared_data(self, key: bytes) -> tuple[int, bytes, int]:
        entry = self.shared.get_data(key)
        if entry is None:
            self._rec("proxy_get_shared_data", {"key": _text(key)}, NOT_FOUND)
            return NOT_FOUND, b"", 0
        value, cas = entry
        self._rec("proxy_get_shared_data", {"key": _text(key)}, OK, {"value": _preview(value), "cas": cas})
        return OK, value, cas

    def proxy_set_shared_data(self, key: bytes, value: bytes, cas: int) -> int:
        args = {"key": _text(key), "value": _preview(value), "cas": cas}
        if not self.shared.set_data(key, value, cas):
            return self._rec("proxy_set_shared_data", args, Status.CAS_MISMATCH)
        return self._rec("proxy_set_shared_data", args, OK)

    def proxy_register_shared_queue(self, name: bytes) -> tuple[int, int]:
        qid = self.shared.register_queue(self.opts.vm_id, name, self)
        self._rec("proxy_register_shared_queue", {"name": _text(name)}, OK, qid)
        return OK, qid

    def proxy_resolve_shared_queue(self, vm_id: bytes, name: bytes) -> tuple[int, int]:
        args = {"vm_id": _text(vm_id), "name": _text(name)}
        qid = self.shared.resolve_queue(_text(vm_id), name)
        if qid is None:
            self._rec("proxy_resolve_shared_queue", args, NOT_FOUND)
            return NOT_FOUND, 0
        self._rec("proxy_resolve_shared_queue", args, OK, qid)
        return OK, qid

    def proxy_enqueue_shared_queue(self, qid: int, value: bytes) -> int:
        args = {"queue_id": qid, "value": _preview(value)}
        if not self.shared.enqueue(qid, value):
            return self._rec("proxy_enqueue_shared_queue", args, NOT_FOUND)
        return self._rec("proxy_enqueue_shared_queue", args, OK)

    def proxy_dequeue_shared_queue(self, qid: int) -> tuple[int, bytes]:
        found, value = self.shared.dequeue(qid)
        if not found:
            self._rec("proxy_dequeue_shared_queue", {"queue_id": qid}, NOT_FOUND)
            return NOT_FOUND, b""
        if value is None:
            self._rec("proxy_dequeue_shared_queue", {"queue_id": qid}, Status.EMPTY)
            return Status.EMPTY, b""
        self._rec("proxy_dequeue_shared_queue", {"queue_id": qid}, OK, _preview(value))
        return OK, value

    # -- metrics ----------------------------------------------------------------------------
    def proxy_define_metric(self, mtype: int, name: bytes) -> tuple[int, int]:
        args = {"type": enum_name(MetricType, mtype), "name": _text(name)}
        if mtype > MetricType.HISTOGRAM:
            self._rec("proxy_define_metric", args, BAD_ARGUMENT)
            return BAD_ARGUMENT, 0
        key = (mtype, _text(name))
        mid = self.metric_names.get(key)
        if mid is None:
            # cpp-host/Envoy encode the type in the low bits of the id.
            mid = ((len(self.metrics) + 1) << 2) | mtype
            self.metrics[mid] = Metric(mid, MetricType(mtype), _text(name))
            self.metric_names[key] = mid
        self._rec("proxy_define_metric", args, OK, mid)
        return OK, mid

    def proxy_increment_metric(self, mid: int, delta: int) -> int:
        m = self.metrics.get(mid)
        args = {"metric": m.name if m else mid, "delta": delta}
        if m is None:
            return self._rec("proxy_increment_metric", args, NOT_FOUND)
        # Envoy: a counter only goes up (a delta of 0 too is BAD_ARGUMENT); no histograms.
        if m.type == MetricType.HISTOGRAM or (m.type == MetricType.COUNTER and delta <= 0):
            return self._rec("proxy_increment_metric", args, BAD_ARGUMENT)
        m.value += delta
        return self._rec("proxy_increment_metric", args, OK)

    def proxy_record_metric(self, mid: int, value: int) -> int:
        m = self.metrics.get(mid)
        args = {"metric": m.name if m else mid, "value": value}
        if m is None:
            return self._rec("proxy_record_metric", args, NOT_FOUND)
        if m.type == MetricType.COUNTER:
            m.value += value & 0xFFFFFFFFFFFFFFFF  # Envoy's recordMetric adds to a counter
        elif m.type == MetricType.HISTOGRAM:
            m.samples.append(value)
        else:
            m.value = value
        return self._rec("proxy_record_metric", args, OK)

    def proxy_get_metric(self, mid: int) -> tuple[int, int]:
        m = self.metrics.get(mid)
        if m is None or m.type == MetricType.HISTOGRAM:
            status = NOT_FOUND if m is None else BAD_ARGUMENT
            self._rec("proxy_get_metric", {"metric": m.name if m else mid}, status)
            return status, 0
        self._rec("proxy_get_metric", {"metric": m.name}, OK, m.value)
        return OK, m.value

    # -- out-of-band calls (answered from the trace) ---------------------------------------
    def _upstream(self, name: str) -> tuple[bool, Any]:
        responses = self.opts.upstreams.get(name)
        if responses is None:
            return False, None
        return True, (responses.pop(0) if len(responses) > 1 else responses[0] if responses else None)

    def proxy_http_call(
        self, upstream: bytes, headers: Pairs | None, body: bytes, trailers: Pairs | None,
        timeout_ms: int,
    ) -> tuple[int, int]:
        hdrs = headers or []
        args = {
            "upstream": _text(upstream),
            "headers": [[_text(n), _text(v)] for n, v in hdrs],
            "body": _preview(body),
            "trailers": [[_text(n), _text(v)] for n, v in trailers or []],
            "timeout_ms": timeout_ms,
        }
        names = {n.lower() for n, _ in hdrs}
        if not {b":method", b":path", b":authority"} <= names:
            self._rec("proxy_http_call", args, BAD_ARGUMENT)  # Envoy requires all three
            return BAD_ARGUMENT, 0
        known, response = self._upstream(_text(upstream))
        if not known:
            self._rec("proxy_http_call", args, BAD_ARGUMENT)  # Envoy: unknown cluster
            return BAD_ARGUMENT, 0
        token = self.next_token
        self.next_token += 1
        c = self.ctx()
        call = Callout(token, "http", _text(upstream), c.id if c else 0, list(hdrs), body,
                       list(trailers or []), timeout_ms, self.now_ns, response)
        self.callouts[token] = call
        self.effects.append(CalloutStarted(call))
        self._rec("proxy_http_call", args, OK, token)
        return OK, token

    def proxy_grpc_call(
        self, upstream: bytes, service: bytes, method: bytes, metadata: Pairs | None,
        message: bytes, timeout_ms: int,
    ) -> tuple[int, int]:
        return self._grpc_open("proxy_grpc_call", "grpc", upstream, service, method, metadata,
                               message, timeout_ms)

    def proxy_grpc_stream(
        self, upstream: bytes, service: bytes, method: bytes, metadata: Pairs | None
    ) -> tuple[int, int]:
        return self._grpc_open("proxy_grpc_stream", "grpc_stream", upstream, service, method,
                               metadata, b"", 0)

    def _grpc_open(self, name: str, kind: str, upstream: bytes, service: bytes, method: bytes,
                   metadata: Pairs | None, message: bytes, timeout_ms: int) -> tuple[int, int]:
        args: dict[str, Any] = {"upstream": _text(upstream), "service": _text(service), "method": _text(method),
                "metadata": [[_text(n), _text(v)] for n, v in metadata or []]}
        if kind == "grpc":
            args.update(message=_preview(message), timeout_ms=timeout_ms)
        known, response = self._upstream(_text(upstream))
        if not known:
            self._rec(name, args, Status.PARSE_FAILURE)  # Envoy: unknown gRPC service/cluster
            return Status.PARSE_FAILURE, 0
        token = self.next_token
        self.next_token += 1
        c = self.ctx()
        call = Callout(token, kind, _text(upstream), c.id if c else 0, list(metadata or []),
                       message, [], timeout_ms, self.now_ns, response, _text(service), _text(method))
        self.callouts[token] = call
        self.effects.append(CalloutStarted(call))
        self._rec(name, args, OK, token)
        return OK, token

    def proxy_grpc_send(self, token: int, message: bytes, end_stream: int) -> int:
        args = {"token": token, "message": _preview(message), "end_stream": bool(end_stream)}
        call = self.callouts.get(token)
        if call is None or call.kind != "grpc_stream" or call.closed:
            return self._rec("proxy_grpc_send", args, NOT_FOUND)
        call.sent.append(message)
        return self._rec("proxy_grpc_send", args, OK)

    def proxy_grpc_cancel(self, token: int) -> int:
        call = self.callouts.pop(token, None)
        if call is None:
            return self._rec("proxy_grpc_cancel", {"token": token}, NOT_FOUND)
        call.closed = call.cancelled = True
        return self._rec("proxy_grpc_cancel", {"token": token}, OK)

    def proxy_grpc_close(self, token: int) -> int:
        call = self.callouts.get(token)
        if call is None:
            return self._rec("proxy_grpc_close", {"token": token}, NOT_FOUND)
        call.closed = True
        # Envoy: closing a unary call cancels it; closing a stream half-closes it (the server's
        # remaining messages still arrive).
        call.cancelled = call.kind != "grpc_stream"
        del self.callouts[token]
        return self._rec("proxy_grpc_close", {"token": token}, OK)

    # -- extras -----------------------------------------------------------------------------
    def pthread_equal(self, a: int, b: int) -> int:
        return 1 if a == b else 0


def _map_name(mtype: int) -> str:
    name = _MAP_NAMES.get(mtype)
    return name if name is not None else enum_name(MapType, mtype).removeprefix("http_")


_MAP_NAMES = {int(m): m.name.lower().removeprefix("http_") for m in MapType}
