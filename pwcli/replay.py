"""replay(): drive a plugin through a trace the way Envoy drives a wasm filter.

Packets are grouped into connections by their canonical 5-tuple and into HTTP/1.1 streams on each
connection; each stream gets one context id for its request and its response. Virtual time advances
by each packet's ``delta_ms``; timers and out-of-band answers fire on that clock. The call sequence and
the interpretation of every return value follow proxy-wasm-cpp-host (ABI.md section 6).
"""

from __future__ import annotations

import gc
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from . import runtimes
from .errors import GuestTrap, PluginLoadError, TraceError
from .events import Event, Failure, LocalReply, StreamResult
from .host.codec import Pairs
from .host.contexts import Message, RootContext, StreamContext
from .host.headers import HeaderMap
from .host.host import EPOCH_2024_NS, Callout, Host, HostOptions, SharedState
from .host.imports import Imports
from .host.spec import V010, BufferType, LogLevel, MapType, PeerType, StreamType
from .plugin import Plugin
from .runtimes.base import Limits
from .trace import FlowChecker, Packet, Trace, UpstreamResponse

NS_PER_MS = 1_000_000
DEFAULT_PORTS = {"http": 80, "https": 443}
HEADER_ACTIONS = {
    0: "continue",
    1: "stop_iteration",
    2: "continue_and_end_stream",
    3: "stop_all_iteration_and_buffer",
    4: "stop_all_iteration_and_watermark",
}
DATA_ACTIONS = {
    0: "continue",
    1: "stop_iteration_and_buffer",
    2: "stop_iteration_and_watermark",
    3: "stop_iteration_no_buffer",
}
LEVELS = {lvl.name.lower(): lvl for lvl in LogLevel}
LEVELS["warning"] = LogLevel.WARN


@dataclass
class ReplayOptions:
    runtime: str = runtimes.DEFAULT
    root_id: str | None = None
    vm_id: str = ""
    plugin_name: str | None = None
    configuration: bytes | None = None
    vm_configuration: bytes | None = None
    environment: dict[str, str] | None = None
    log_level: str | None = None
    seed: int = 0
    start_epoch_ns: int = EPOCH_2024_NS
    properties: dict[str, Any] = field(default_factory=dict)
    failure_policy: str = "closed"  # closed | open | reload
    fail_fast: bool = False
    drain_ms: float = 0
    limits: Limits = field(default_factory=Limits)
    cache: bool = True
    cache_dir: str | None = None
    runtime_options: dict[str, Any] = field(default_factory=dict)
    pace: Callable[[int, int], None] | None = None  # (packet index, virtual ns) -> waits
    loop: int = 1  # replay the packets this many times; each loop's connections are new ones


@dataclass
class Run:
    """Everything a replay observed."""

    plugin: dict[str, Any]
    inputs: dict[str, Any]
    runtime: str
    runtime_version: str
    streams: list[StreamResult]
    events: list[Event]
    failures: list[Failure]
    metrics: dict[str, Any]
    log_counts: dict[str, int]
    warnings: list[str]
    notes: list[str]
    vm_failure: Failure | None = None
    refused_configuration: str | None = None
    packets: int = 0
    end_ns: int = 0
    fuel: int = 0
    wall_seconds: float = 0.0
    expectations: Any = None  # pwcli.expect.Outcome when the trace has expect blocks
    tally: dict[str, Any] | None = None  # streaming mode: summary counts (streams/events dropped)
    input_error: Any = None  # a TraceError met mid-way in a streamed trace: the replay stopped there

    @property
    def failed(self) -> bool:
        return bool(self.failures) or self.refused_configuration is not None

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def stream(self, index: int) -> StreamResult:
        """Stream ``index`` (streams are numbered in the order their first packet arrived)."""
        return self.streams[index]

    def logs(self, stream: int | None = None) -> list[tuple[str, str]]:
        """``(level, message)`` of every log line shown, or of one stream's."""
        return [(e.name, e.args["message"]) for e in self.events
                if e.kind == "log" and (stream is None or e.stream == stream)]

    def hostcalls(self, name: str | None = None, stream: int | None = None) -> list[Event]:
        """The host calls (all, or those named ``name``), of the whole run or of one stream."""
        return [e for e in self.events if e.kind == "hostcall" and name in (None, e.name)
                and (stream is None or e.stream == stream)]

    def callbacks(self, stream: int | None = None) -> list[str]:
        """The names of the callbacks called, in order."""
        return [e.name for e in self.events
                if e.kind == "callback" and (stream is None or e.stream == stream)]


class VmFailed(Exception):  # noqa: N818 - internal control flow
    pass


GC_EVERY = 20_000  # packets between two young-generation collections (automatic GC is off)


class _EventTally:
    """Streaming mode's stand-in for the event list: counts what the summary needs, keeps nothing."""

    def __init__(self) -> None:
        self.host_calls = 0
        self.callbacks = 0
        self.in_streams = 0  # host calls and logs of streams (the "did nothing" warning)
        self.streams: dict[str, int] = dict.fromkeys(
            ("streams", "completed", "failed", "not_run", "stalled", "incomplete", "local_replies"), 0
        )

    def append(self, ev: Event) -> None:
        kind = ev.kind
        if kind == "hostcall":
            self.host_calls += 1
            if ev.stream is not None:
                self.in_streams += 1
        elif kind == "callback":
            self.callbacks += 1
        elif kind == "log" and ev.stream is not None:
            self.in_streams += 1

    def __iter__(self) -> Iterator[Event]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: Any) -> list[Event]:
        return []  # nothing kept: the events went to the sink as they happened

    def add_stream(self, r: StreamResult) -> None:
        c = self.streams
        flags = set(r.flags)
        c["streams"] += 1
        c["completed"] += not ({"failed", "not_run"} & flags)
        c["failed"] += "failed" in flags
        c["not_run"] += "not_run" in flags
        c["stalled"] += "stalled" in flags
        c["incomplete"] += "incomplete" in flags
        c["local_replies"] += r.local_reply is not None

    def tally(self) -> dict[str, Any]:
        return {**self.streams, "host_calls": self.host_calls, "callbacks": self.callbacks}


class _Conn:
    def __init__(self, cid: int, key: tuple[str, int, str, int, str], tcp: bool) -> None:
        self.id = cid
        self.key = key
        self.tcp = tcp
        self.open_request: StreamContext | None = None
        self.awaiting: deque[StreamContext] = deque()
        self.tcp_stream: StreamContext | None = None


def replay(plugin: Plugin, trace: Trace, options: ReplayOptions | None = None) -> Run:
    """Replay ``trace`` through ``plugin``; returns the Run. Raises PwcliError for bad input only.

    When the trace has expect blocks, ``run.expectations`` holds their outcome."""
    from .expect import Checker, has_expectations

    replayer = Replayer(plugin, trace, options or ReplayOptions())
    checker = Checker(trace) if has_expectations(trace) else None
    if checker is not None:
        replayer.after_packet = checker.after_packet
    run = replayer.run()
    if checker is not None:
        run.expectations = checker.evaluate(run)
    return run


class Replayer:
    def __init__(self, plugin: Plugin, trace: Trace, options: ReplayOptions) -> None:
        self.plugin = plugin
        self.trace = trace
        self.o = options
        inputs = trace.plugin
        self.root_id = _pick(options.root_id, inputs and inputs.root_id, "")
        self.configuration = _pick(
            options.configuration, inputs and _b(inputs.configuration), b""
        )
        self.vm_configuration = _pick(
            options.vm_configuration, inputs and _b(inputs.vm_configuration), b""
        )
        self.environment = _pick(options.environment, inputs and inputs.environment, {})
        self.log_level = _pick(options.log_level, inputs and inputs.log_level, "info")
        self.runtime = runtimes.create(options.runtime, **self._runtime_kwargs())
        self.shared = SharedState()
        self.events: list[Event] = []
        self.streams: list[StreamResult] = []
        self.failures: list[Failure] = []
        self.warnings: list[str] = []
        self.notes: list[str] = list(plugin.lenient_notes)
        self.conns: dict[tuple[str, int, str, int, str], _Conn] = {}
        self.active: dict[int, StreamContext] = {}
        self.heap: list[tuple[int, int, str, Any]] = []
        self.seq = itertools.count()
        self.tick_gen = 0
        self.now_ns = 0
        self.next_ctx = 1
        self.vm_failure: Failure | None = None
        self.refused: str | None = None
        self.fail_fast_hit = False
        self.vm_gen = 0  # which VM is running: --failure-policy reload starts new ones
        self.stream_gen: dict[int, int] = {}  # stream context id -> the VM it was created on
        self.host: Host = None  # type: ignore[assignment]
        self.instance: Any = None
        self.imports: Imports = None  # type: ignore[assignment]
        self.root: RootContext = None  # type: ignore[assignment]
        self.sink: Callable[[Event], None] | None = None
        # Called after each packet with (packet index, this replayer): pwcli.expect's snapshots.
        self.after_packet: Callable[[int, Replayer], None] | None = None
        # Streaming mode (set before run): finished streams go to stream_sink and are dropped,
        # events are counted, not kept; memory stays flat however long the trace.
        self.stream_sink: Callable[[StreamResult], None] | None = None
        self.stream_count = 0
        self.input_error: TraceError | None = None
        self.flow: FlowChecker | None = None
        # --workers (pwcli.workers): replay only connections id % n == k of (k, n), numbering
        # streams, contexts and connections and keeping virtual time as the whole trace would.
        self.shard: tuple[int, int] | None = None
        self.global_streams = 0
        self.next_ordinal: int | None = None
        self.clock_ns = 0
        self.after_start: Callable[[], None] | None = None

    def _runtime_kwargs(self) -> dict[str, Any]:
        kw = dict(self.o.runtime_options)
        if self.o.runtime == "wasmtime" and self.o.cache_dir is not None:
            kw["cache_dir"] = self.o.cache_dir
        return kw

    # -- VM life ----------------------------------------------------------------------------
    def _host_options(self) -> HostOptions:
        props = {tuple(k.split(".")): v for k, v in (self.trace.properties or {}).items()}
        props.update({tuple(k.split(".")): v for k, v in self.o.properties.items()})
        from .host.properties import encode_value

        ups: dict[str, list[Any]] = {}
        for name, resp in (self.trace.upstreams or {}).items():
            ups[name] = list(resp) if isinstance(resp, list) else [resp]
        return HostOptions(
            root_id=self.root_id,
            vm_id=self.o.vm_id,
            plugin_name=self.o.plugin_name,
            configuration=self.configuration,
            vm_configuration=self.vm_configuration,
            environment=dict(self.environment),
            log_level=LEVELS[self.log_level],
            seed=self.o.seed,
            start_epoch_ns=self.o.start_epoch_ns,
            properties={k: encode_value(v) for k, v in props.items()},
            upstreams=ups,
        )

    def _start_vm(self) -> bool:
        """Instantiate, run start-up, create the root context, start and configure it."""
        self.host = host = Host(self.plugin.abi, self._host_options(), self.shared)
        host.now_ns = self.now_ns
        host.events = self.events
        host.sink = self.sink
        lenient = self.plugin.lenient or bool(self.plugin.lenient_notes)
        self.imports = Imports(host, allocator=self.plugin.allocator, lenient=lenient)
        funcs = self.imports.build(self.plugin.info.imports, self.plugin.abi)
        self.vm_gen += 1
        phase = "instantiate"  # a trap here comes from the module's wasm start function
        try:
            self.instance = None
            try:
                self.instance = self.runtime.load(
                    self.plugin.wasm, funcs, limits=self.o.limits, cache=self.o.cache
                )
            except PluginLoadError as exc:
                raise PluginLoadError(f"{self.plugin.path}: {exc}") from None
            self.imports.instance = self.instance
            host.restricted = "startup"
            for name in self.plugin.startup:
                phase = name
                ev = host.record("callback", name, {})
                try:
                    self._guest(name, *((0, 0) if name == "main" else ()))
                except GuestTrap:
                    ev.result = "trap"
                    raise
        except GuestTrap as trap:
            self._vm_failed(trap, phase, 0)
            return False
        finally:
            host.restricted = None
            self._flush_stdio()
        root_id = self._new_ctx()
        self.root = RootContext(root_id)
        host.root = self.root
        host.contexts[root_id] = self.root
        try:
            self._callback(self.root, "proxy_on_context_create", root_id, 0)
            host.oob_buffers = {BufferType.VM_CONFIGURATION: self.vm_configuration}
            ok = self._callback(
                self.root, "proxy_on_vm_start", root_id, len(self.vm_configuration)
            )
            if ok == 0:
                return self._refuse("proxy_on_vm_start returned false: the VM refused to start",
                                    "proxy_on_vm_start")
            host.oob_buffers = {BufferType.PLUGIN_CONFIGURATION: self.configuration}
            ok = self._callback(
                self.root, "proxy_on_configure", root_id, len(self.configuration)
            )
            if ok == 0:
                return self._refuse("proxy_on_configure returned false: the plugin refused its configuration")
        except VmFailed:
            return False
        finally:
            host.oob_buffers = {}
        self._after_callback()
        return True

    def _refuse(self, why: str, callback: str = "proxy_on_configure") -> bool:
        self.refused = why
        self.host.record("failure", "configuration_refused", {"reason": why}, ctx=self.root)
        self.vm_failure = Failure("configuration_refused", callback, self.root.id, why)
        return False

    def _new_ctx(self) -> int:
        cid = self.next_ctx
        self.next_ctx += 1
        return cid

    def _vm_failed(self, trap: GuestTrap, callback: str, ctx: int, context: Any = None) -> Failure:
        budget = self.o.limits.fuel if trap.kind == "timeout" and trap.out_of_fuel else None
        f = Failure(trap.kind, callback, ctx, trap.message, trap.frames, self.now_ns, trap.code,
                    budget)
        self.failures.append(f)
        if self.vm_failure is None or self.o.failure_policy != "reload":
            self.vm_failure = f
        # The engine's own message differs between runtimes: it goes in the table, not the event.
        self.host.record("failure", trap.kind, {"callback": callback, "context_id": ctx}, ctx=context)
        if self.o.fail_fast:
            self.fail_fast_hit = True
        return f

    # -- calling the guest ------------------------------------------------------------------
    def _guest(self, name: str, *args: int) -> int | None:
        return self.instance.call(name, *args)

    def _callback(self, ctx: Any, name: str, *args: int) -> int | None:
        """Call an exported callback for ``ctx``; None when the plugin does not export it."""
        arity = self.plugin.arity.get(name)
        if arity is None or not self.instance.has_export(name):
            return None
        if arity != len(args):  # lenient mode: call by the export's declared arity
            args = (args + (0,) * arity)[:arity]
        host = self.host
        host.now_ns = self.now_ns
        host.current = ctx
        host.effective = None
        host.callback = name
        if host.sink is not None:
            host.held = []  # a streamed callback line carries its result: hold what it does
        ev = host.record("callback", name, _callback_args(name, args))
        try:
            try:
                result = self._guest(name, *args)
            except GuestTrap as trap:
                ev.result = "trap"
                host.current = host.effective = None
                self._flush_stdio()
                stream = ctx if isinstance(ctx, StreamContext) else None
                f = self._vm_failed(trap, name, ctx.id, ctx)
                if stream is not None:
                    stream.result.failure = f
                raise VmFailed from None
            finally:
                host.callback = None
            self._flush_stdio()
            host.current = host.effective = None
            ev.result = _callback_result(name, result)
            return result
        finally:
            host.release()

    def _flush_stdio(self) -> None:
        if self.imports is not None:
            self.imports.wasi.flush()

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> Run:
        started = time.monotonic()
        streaming = self.stream_sink is not None
        if streaming:
            self.events = _EventTally()  # type: ignore[assignment]
        if getattr(self.trace, "streaming", False) or self.o.loop > 1 or self.shard is not None:
            # Packets validated while they arrive (or repeated): pair them as they come.
            self.flow = FlowChecker(self.trace.source)
        gc_was_enabled = gc.isenabled()
        gc.disable()  # collected every GC_EVERY packets instead: the replay makes few cycles
        try:
            vm_ok = self._start_vm()
            if self.shard is not None:
                self.next_ctx = 1 << 31  # stream contexts are numbered by the whole trace
            if self.after_start is not None:
                self.after_start()
            count = self._loop(vm_ok, streaming)
            if not self.fail_fast_hit and self.input_error is None:
                self._drain()
            self._finish_all()
            if streaming:
                self._sweep(final=True)
        finally:
            if gc_was_enabled:
                gc.enable()
        result = self._result(count, time.monotonic() - started)
        result.input_error = self.input_error
        if streaming:
            result.tally = self.events.tally()  # type: ignore[attr-defined]
            result.events = []
        return result

    def _packets(self) -> Iterator[Packet]:
        """The packets of every loop: from the second loop on, a packet's connection key carries
        the loop number, so each loop's connections are new connections (new streams and ids)."""
        for loop in range(self.o.loop):
            for p in self.trace.packets:
                if loop:
                    p = p.model_copy()
                    p.__dict__["key"] = (*p.key, loop)  # the cached 5-tuple, made distinct
                yield p

    def _loop(self, vm_ok: bool, streaming: bool) -> int:
        count = 0
        packets = self._packets()
        flow = self.flow
        pace = self.o.pace
        after = self.after_packet
        shard = self.shard
        poll = getattr(self.shared, "poll", None) if shard is not None else None
        index = 0
        while True:
            try:
                packet = next(packets)
                if flow is not None:
                    cid = flow.check(index, packet)
            except StopIteration:
                break
            except TraceError as exc:
                self.input_error = exc  # reported after what was replayed before it
                break
            if self.fail_fast_hit:
                self.warnings.append(f"--fail-fast: stopped before packet {index}")
                break
            if shard is not None:
                self.next_ordinal = None
                if flow.opened:  # type: ignore[union-attr]
                    self.next_ordinal = self.global_streams
                    self.global_streams += 1
                self.clock_ns += round(packet.delta_ms * NS_PER_MS)
                if cid % shard[1] != shard[0]:
                    index += 1
                    continue
                target = self.clock_ns
            else:
                target = self.now_ns + round(packet.delta_ms * NS_PER_MS)
            if pace is not None:
                pace(index, target)
            self._run_timers(target)
            self._packet(index, packet, vm_ok)
            if after is not None:
                after(index, self)
            count += 1
            index += 1
            if poll is not None and self.host is not None:
                poll()  # queues of this worker filled by another one
                if self.host.queue_ready:
                    self._after_callback()
            if index % GC_EVERY == 0:
                if streaming:
                    self._sweep()
                gc.collect(1)
        if shard is not None and self.input_error is None and not self.fail_fast_hit:
            self._run_timers(self.clock_ns)  # the whole trace's last packet time
        return count

    def _sweep(self, final: bool = False) -> None:
        """Streaming mode: hand finished streams to stream_sink and forget them."""
        keep = []
        active = self.active
        contexts = self.host.contexts if self.host is not None else {}
        for r in self.streams:
            if not final and r.ctx in active:
                keep.append(r)
                continue
            self.stream_gen.pop(r.ctx, None)
            ctx = contexts.get(r.ctx)
            if ctx is not None and not ctx.is_root and getattr(ctx, "finished", False):
                del contexts[r.ctx]
            self.events.add_stream(r)  # type: ignore[attr-defined]
            self.stream_sink(r)  # type: ignore[misc]
        self.streams = keep

    def _packet(self, index: int, p: Packet, vm_ok: bool) -> None:
        key = p.key
        conn = self.conns.get(key)
        if conn is None:
            cid = (self.flow.seen[key] >> 1) if self.flow is not None else len(self.conns) + 1
            conn = _Conn(cid, key, p.is_tcp)
            self.conns[key] = conn
        self._on_packet(conn, index, p, vm_ok)
        if self.stream_sink is not None and conn.open_request is None and not conn.awaiting and (
            conn.tcp_stream is None or conn.tcp_stream.finished
        ):
            del self.conns[key]  # idle: a later packet of this 5-tuple gets its id from the flow

    def _on_packet(self, conn: _Conn, index: int, p: Packet, vm_ok: bool) -> None:
        if not vm_ok:
            self._not_run(conn, index, p)
            return
        if p.is_tcp:
            self._tcp_packet(conn, index, p)
        elif p.forward_direction:
            s = conn.open_request
            if s is None:
                s = self._new_stream(conn, index, p, "http")
                conn.awaiting.append(s)
            conn.open_request = None if p.end_stream else s
            self._request_packet(s, p)
        else:
            s = conn.awaiting[0]
            if p.end_stream:
                conn.awaiting.popleft()
            self._response_packet(s, p, index)

    def _not_run(self, conn: _Conn, index: int, p: Packet) -> None:
        """The VM never started: list the streams that could not run."""
        if p.is_tcp or not p.forward_direction or conn.open_request is not None:
            if p.forward_direction and not p.end_stream:
                return
            if not p.is_tcp and not p.forward_direction and conn.awaiting and p.end_stream:
                conn.awaiting.popleft()
            return
        s = self._stream_result(conn, index, p, "http", 0)
        s.flags.append("not_run")
        conn.awaiting.append(None)  # type: ignore[arg-type]
        conn.open_request = None if p.end_stream else s  # type: ignore[assignment]

    # -- streams ----------------------------------------------------------------------------
    def _stream_result(self, conn: _Conn, index: int, p: Packet, kind: str, ctx: int) -> StreamResult:
        c, s = p.client, p.server
        number = self.stream_count if self.next_ordinal is None else self.next_ordinal
        r = StreamResult(number, ctx, kind, _hostport(*c), _hostport(*s), index)
        self.stream_count += 1
        self.streams.append(r)
        return r

    def _new_stream(self, conn: _Conn, index: int, p: Packet, kind: str) -> StreamContext:
        if self.vm_failure is not None and self.o.failure_policy == "reload":
            self._reload_vm()
        # --workers: the id one replay of the whole trace gives (root 1, then streams in order)
        ctx_id = self._new_ctx() if self.next_ordinal is None else self.next_ordinal + 2
        self.stream_gen[ctx_id] = self.vm_gen
        result = self._stream_result(conn, index, p, kind, ctx_id)
        info = {
            "client": p.client,
            "server": p.server,
            "scheme": p.scheme,
            "connection": conn.id,
            "start_ns": self.now_ns,
            "start_epoch_ns": self.o.start_epoch_ns + self.now_ns,
        }
        s = StreamContext(ctx_id, self.root.id, result=result, info=info)
        self.host.contexts[ctx_id] = s
        self.active[ctx_id] = s
        if self._vm_down():
            return s
        try:
            self._callback(s, "proxy_on_context_create", ctx_id, self.root.id)
        except VmFailed:
            pass
        self._after_callback()
        return s

    def _vm_down(self) -> bool:
        return self.vm_failure is not None

    def _stream_down(self, s: StreamContext) -> bool:
        """The stream's VM failed (a reloaded VM never sees the streams of the one it replaced)."""
        return self.vm_failure is not None or self.stream_gen.get(s.id, self.vm_gen) != self.vm_gen

    def _reload_vm(self) -> None:
        """--failure-policy reload: a fresh VM (same shared data) for the next stream.

        The streams still open on the failed VM stay failed (closed), as in Envoy."""
        failed = self.vm_failure
        self.host.now_ns = self.now_ns
        self.host.record("note", "vm_reload", {"after": failed.kind if failed else None})
        self.vm_failure = None
        self.heap = [e for e in self.heap if e[2] not in ("tick", "callout", "callout_fail",
                                                          "queue_ready")]
        heapq.heapify(self.heap)
        self._start_vm()

    def _fail_stream(self, s: StreamContext) -> None:
        """The VM failed: Envoy's fail-closed answer is a local 503 without entering the plugin;
        fail-open lets the stream through untouched."""
        if s.finished:
            return
        if s.result.failure is None and self.vm_failure is not None and (
            self.o.failure_policy != "open"
        ):
            s.result.failure = self.vm_failure
        if self.o.failure_policy == "open":
            self._pass_through(s)
            return
        s.finished = True
        self.active.pop(s.id, None)
        s.result.flags.append("failed")
        if s.result.kind == "tcp":  # Envoy closes the connection: what was forwarded stays
            return
        lr = LocalReply(503, "wasm_fail_stream", b"", [], None, "", self.now_ns)
        s.result.local_reply = lr
        s.resp.headers = HeaderMap(_local_reply_headers(lr))
        s.resp.forwarded = bytearray()
        s.resp.body = bytearray()
        self._record_final(s)

    def _pass_through(self, s: StreamContext) -> None:
        """--failure-policy open: what arrives is forwarded as it is, the plugin is not entered."""
        if "passed_through" not in s.result.flags:
            s.result.flags.append("passed_through")
        if s.result.kind == "tcp":
            return
        for m in (s.req, s.resp):
            m.headers_live = m.body_live = m.trailers_live = False
            m.paused = None
            while m.pending:
                kind, payload, _ = m.pending.popleft()
                if kind == "body":
                    m.body.extend(payload)
                elif kind == "trailers":
                    m.trailers = HeaderMap(payload)
            m.forwarded.extend(m.body)
            m.body.clear()
            if m.received_end:
                m.ended = True
        if s.held:
            held, s.held = s.held, []
            for packet, index in held:
                self._response_packet(s, packet, index)
        if s.req.ended and s.resp.ended and not s.finished:
            s.finished = True
            self.active.pop(s.id, None)
            self._record_final(s)

    def _request_packet(self, s: StreamContext, p: Packet) -> None:
        m = s.req
        if s.finished:
            return
        first = not m.started
        if first:
            m.headers = HeaderMap(request_headers(p))
            m.started = True
            m.pending.append(("headers", None, p.end_stream and not p.body and not p.trailers))
        if p.body:
            m.pending.append(("body", p.body, p.end_stream and not p.trailers))
        elif p.end_stream and not p.trailers and not first:
            m.pending.append(("body", b"", True))  # an empty last frame ends the message
        if p.trailers:
            m.pending.append(("trailers", _pairs(p.trailers), True))
        if p.end_stream:
            m.received_end = True
            s.info["request_end_ns"] = self.now_ns
        self._pump(s, "req")

    def _response_packet(self, s: StreamContext, p: Packet, index: int) -> None:
        if s.local_reply_sent or (s.result.local_reply is not None):
            s.result.undelivered.append(index)
            return
        if s.finished:
            s.result.undelivered.append(index)
            return
        if (s.req.paused is not None or s.held) and not self._stream_down(s):
            s.held.append((p, index))
            return
        m = s.resp
        first = not m.started
        if first:
            m.headers = HeaderMap(response_headers(p))
            m.started = True
            m.pending.append(("headers", None, p.end_stream and not p.body and not p.trailers))
        if p.body:
            m.pending.append(("body", p.body, p.end_stream and not p.trailers))
        elif p.end_stream and not p.trailers and not first:
            m.pending.append(("body", b"", True))
        if p.trailers:
            m.pending.append(("trailers", _pairs(p.trailers), True))
        if p.end_stream:
            m.received_end = True
        self._pump(s, "resp")

    def _pump(self, s: StreamContext, d: str) -> None:
        m = s.req if d == "req" else s.resp
        if self._stream_down(s) and not s.finished:
            self._fail_stream(s)
            return
        while m.pending and m.paused not in ("headers", "trailers") and not s.finished:
            if self._stream_down(s):
                self._fail_stream(s)
                return
            kind, payload, eos = m.pending.popleft()
            try:
                if kind == "headers":
                    self._deliver_headers(s, d, eos)
                elif kind == "body":
                    self._deliver_body(s, d, payload, eos)
                else:
                    self._deliver_trailers(s, d, payload)
            except VmFailed:
                self._fail_stream(s)
                return
            if self._local_reply(s, d):
                return
            self._after_callback()
        if s.finished:
            return
        if m.received_end and not m.pending and m.paused is None:
            m.ended = True
        if d == "req" and m.paused is None and s.held:
            held, s.held = s.held, []
            for packet, index in held:
                self._response_packet(s, packet, index)
        if d == "resp" and m.ended:
            self._complete(s)

    def _deliver_headers(self, s: StreamContext, d: str, eos: bool) -> None:
        m = s.req if d == "req" else s.resp
        assert m.headers is not None, "bug in pwcli: headers callback without headers"
        m.headers_live = True
        m.end_of_stream = eos
        name = "proxy_on_request_headers" if d == "req" else "proxy_on_response_headers"
        r = self._callback(s, name, s.id, len(m.headers), int(eos))
        action = _headers_action(r, self.plugin.abi, s.local_reply is not None)
        s.result.actions.append((name, action))
        if action in ("continue", "continue_and_end_stream"):
            m.headers_live = False
        else:
            m.paused = "headers"

    def _deliver_body(self, s: StreamContext, d: str, chunk: bytes, eos: bool) -> None:
        m = s.req if d == "req" else s.resp
        m.body.extend(chunk)
        m.body_live = True
        m.end_of_stream = eos
        name = "proxy_on_request_body" if d == "req" else "proxy_on_response_body"
        r = self._callback(s, name, s.id, len(m.body), int(eos))
        action = _data_action(r, s.local_reply is not None)
        s.result.actions.append((name, action))
        if action == "continue":
            m.forwarded.extend(m.body)
            m.body.clear()
            m.body_live = False
            m.paused = None
        else:
            m.paused = "body"

    def _deliver_trailers(self, s: StreamContext, d: str, pairs: Pairs) -> None:
        m = s.req if d == "req" else s.resp
        if m.trailers is None:
            m.trailers = HeaderMap(pairs)
        else:
            for n, v in pairs:
                m.trailers.add(n, v)
        m.trailers_live = True
        name = "proxy_on_request_trailers" if d == "req" else "proxy_on_response_trailers"
        r = self._callback(s, name, s.id, len(m.trailers))
        action = "continue" if not r and s.local_reply is None else "stop_iteration"
        s.result.actions.append((name, action))
        if action == "continue":
            m.trailers_live = False
            if m.paused == "body":
                self._release_body(m)
        else:
            m.paused = "trailers"

    def _release_body(self, m: Message) -> None:
        m.forwarded.extend(m.body)
        m.body.clear()
        m.body_live = False
        m.paused = None

    def _resume(self, s: StreamContext, stype: int) -> None:
        if s.finished:
            return
        d = "req" if stype == StreamType.HTTP_REQUEST else "resp"
        m = s.req if d == "req" else s.resp
        what = "request" if d == "req" else "response"
        if m.paused is None:
            self.host.record("note", "continue_ignored", {"stream": what, "reason": "not paused"}, ctx=s)
            return
        self.host.record("note", "resumed", {"stream": what, "from": m.paused}, ctx=s)
        if m.paused == "headers":
            m.paused = None
            m.headers_live = False  # Envoy's continueStream drops its pointer to the headers
            _coalesce_body(m)
        elif m.paused == "body":
            self._release_body(m)
        else:
            m.trailers_live = False
            if m.body:
                self._release_body(m)
            m.paused = None
        self._pump(s, d)

    def _close(self, s: StreamContext, stype: int) -> None:
        if s.finished:
            return
        s.result.flags.append("reset_by_plugin")
        self.host.record("note", "stream_reset", {"stream": StreamType(stype).name.lower()}, ctx=s)
        s.req.pending.clear()
        s.resp.pending.clear()
        s.held.clear()
        s.req.paused = s.resp.paused = None
        self._complete(s)

    # -- local replies ----------------------------------------------------------------------
    def _local_reply(self, s: StreamContext, d: str) -> bool:
        lr = s.local_reply
        if lr is None or s.local_reply_sent:
            return False
        s.local_reply_sent = True
        s.result.local_reply = lr
        self.host.record("local_reply", "send_local_response",
                         {"status": lr.status, "details": lr.details}, ctx=s)
        s.req.pending.clear()
        s.req.paused = None
        s.req.headers_live = s.req.body_live = s.req.trailers_live = False
        s.held.clear()
        headers = _local_reply_headers(lr)
        if d == "req" and not s.resp.started:
            # Envoy's encodeLocalReply: the reply passes through this plugin's response callbacks.
            s.resp = Message(headers=HeaderMap(headers), started=True, received_end=True)
            s.resp.pending.append(("headers", None, not lr.body))
            if lr.body:
                s.resp.pending.append(("body", lr.body, True))
            s.local_reply = None
            self._pump(s, "resp")
        else:
            s.resp = Message(headers=HeaderMap(headers), started=True, received_end=True, ended=True)
            s.resp.forwarded = bytearray(lr.body)
            s.resp.pending.clear()
            s.local_reply = None
            self._complete(s)
        return True

    # -- end of a stream ---------------------------------------------------------------------
    def _complete(self, s: StreamContext) -> None:
        if s.finished:
            return
        s.finished = True
        if self._stream_down(s):
            self._record_final(s)
            self.active.pop(s.id, None)
            return
        try:
            r = self._callback(s, "proxy_on_done", s.id)
        except VmFailed:
            self._record_final(s)
            self.active.pop(s.id, None)
            return
        if r == 0:
            s.done_pending = True
            self.host.record("note", "done_deferred", {"reason": "proxy_on_done returned false"}, ctx=s)
            self._after_callback()
            return
        self._log_and_delete(s)

    def _log_and_delete(self, s: StreamContext) -> None:
        self._record_final(s)
        try:
            s.in_log = True
            self._callback(s, "proxy_on_log", s.id)
            s.in_log = False
            self._callback(s, "proxy_on_delete", s.id)
        except VmFailed:
            pass
        finally:
            s.in_log = False
            self.host.contexts.pop(s.id, None)
            self.active.pop(s.id, None)
        self._after_callback()

    def _record_final(self, s: StreamContext) -> None:
        r = s.result
        if r.kind == "tcp":  # what the plugin still held is flushed when the connection ends
            r.downstream += bytes(s.tcp_down)
            r.upstream += bytes(s.tcp_up)
            s.tcp_down.clear()
            s.tcp_up.clear()
            return
        for msg, out in ((s.req, r.request), (s.resp, r.response)):
            out.headers = list(msg.headers.pairs) if msg.headers is not None else None
            out.body = bytes(msg.forwarded) + bytes(msg.body)
            out.trailers = list(msg.trailers.pairs) if msg.trailers is not None else None

    # -- after each callback: what the plugin asked for ------------------------------------
    def _after_callback(self) -> None:
        host = self.host
        for _ in range(10_000):
            if self._vm_down():
                return
            progressed = False
            if host.tick_changed:
                host.tick_changed = False
                self._schedule_tick(self.now_ns)
            if host.new_callouts:
                calls, host.new_callouts = host.new_callouts, []
                for call in calls:
                    self._schedule_callout(call)
            if host.queue_ready:
                ready, host.queue_ready = host.queue_ready, []
                for owner, qid in ready:
                    if owner is host:
                        self._push(self.now_ns, "queue_ready", qid)
            if host.done_requests:
                done, host.done_requests = host.done_requests, []
                for s in done:
                    self._log_and_delete(s)
                progressed = True
            for s in list(self.active.values()):
                if s.close:
                    stypes, s.close = s.close, []
                    self._close(s, stypes[0])
                    progressed = True
                elif s.resume:
                    stypes, s.resume = s.resume, []
                    for st in stypes:
                        if st in (StreamType.HTTP_REQUEST, StreamType.HTTP_RESPONSE):
                            self._resume(s, st)
                        else:
                            self._tcp_resume(s, st)
                    progressed = True
            if not progressed:
                return

    # -- timers and out-of-band answers ----------------------------------------------------
    def _push(self, t_ns: int, kind: str, payload: Any) -> None:
        heapq.heappush(self.heap, (t_ns, next(self.seq), kind, payload))

    def _schedule_tick(self, now: int) -> None:
        self.tick_gen += 1
        period = self.root.tick_period_ms if self.root else 0
        if period > 0:
            self._push(now + period * NS_PER_MS, "tick", self.tick_gen)

    def _schedule_callout(self, call: Callout) -> None:
        resp: UpstreamResponse | None = call.response
        timeout = call.timeout_ms * NS_PER_MS if call.timeout_ms else None
        if resp is None:
            self._push(self.now_ns, "callout_fail", (call, "no declared response left"))
            return
        delay = round(resp.delay_ms * NS_PER_MS)
        if resp.fail == "timeout" or (timeout is not None and delay > timeout):
            self._push(self.now_ns + (timeout or delay), "callout_fail", (call, "timeout"))
        elif resp.fail == "reset":
            self._push(self.now_ns + delay, "callout_fail", (call, "reset"))
        else:
            self._push(self.now_ns + delay, "callout", call)

    def _run_timers(self, until: int, *, ticks: bool = True) -> None:
        while self.heap and self.heap[0][0] <= until and not self._vm_down():
            t, _, kind, payload = heapq.heappop(self.heap)
            if kind == "tick" and (payload != self.tick_gen or not ticks):
                continue
            self.now_ns = max(self.now_ns, t)
            self._fire(kind, payload)
        self.now_ns = max(self.now_ns, until)

    def _fire(self, kind: str, payload: Any) -> None:
        host = self.host
        try:
            call = payload if kind == "callout" else payload[0] if kind == "callout_fail" else None
            if call is not None and call.cancelled:
                # Envoy drops the answer of a cancelled call (or of a closed unary call).
                host.record("note", "callout_cancelled", {"token": call.token})
            elif kind == "tick":
                self._callback(self.root, "proxy_on_tick", self.root.id)
                if not host.tick_changed:
                    self._schedule_tick(self.now_ns)
            elif kind == "callout":
                self._deliver_callout(payload)
            elif kind == "callout_fail":
                call, why = payload
                host.record("note", "callout_failed", {"token": call.token, "reason": why})
                self._deliver_failure(call, why)
            elif kind == "queue_ready":
                self._callback(self.root, "proxy_on_queue_ready", self.root.id, payload)
        except VmFailed:
            pass
        finally:
            host.oob_maps = {}
            host.oob_buffers = {}
            host.status = None
        self._after_callback()

    def _deliver_callout(self, call: Callout) -> None:
        host = self.host
        resp: UpstreamResponse = call.response
        host.callouts.pop(call.token, None)
        if call.kind == "http":
            headers = HeaderMap([(b":status", str(resp.status).encode())] + _pairs(resp.headers))
            trailers = HeaderMap(_pairs(resp.trailers))
            body = resp.body or b""
            host.oob_maps = {MapType.HTTP_CALL_RESPONSE_HEADERS: headers,
                             MapType.HTTP_CALL_RESPONSE_TRAILERS: trailers}
            host.oob_buffers = {BufferType.HTTP_CALL_RESPONSE_BODY: body}
            self._callback(self.root, "proxy_on_http_call_response", self.root.id, call.token,
                           len(headers), len(body), len(trailers))
            return
        # gRPC: initial metadata, each message, trailing metadata, close.
        rid = self.root.id
        if resp.initial_metadata:
            md = HeaderMap(_pairs(resp.initial_metadata))
            host.oob_maps = {MapType.GRPC_CALL_INITIAL_METADATA: md}
            self._callback(self.root, "proxy_on_grpc_receive_initial_metadata", rid, call.token, len(md))
        messages = list(resp.messages or ([resp.body] if resp.body is not None else []))
        for msg in messages:
            host.oob_maps = {}
            host.oob_buffers = {BufferType.GRPC_CALL_MESSAGE: msg}
            self._callback(self.root, "proxy_on_grpc_receive", rid, call.token, len(msg))
        host.oob_buffers = {}
        if resp.trailing_metadata:
            md = HeaderMap(_pairs(resp.trailing_metadata))
            host.oob_maps = {MapType.GRPC_CALL_TRAILING_METADATA: md}
            self._callback(self.root, "proxy_on_grpc_receive_trailing_metadata", rid, call.token, len(md))
        host.oob_maps = {}
        code = resp.grpc_status or 0
        host.status = (code, (resp.grpc_message or "").encode())
        self._callback(self.root, "proxy_on_grpc_close", rid, call.token, code)

    def _deliver_failure(self, call: Callout, why: str = "reset") -> None:
        host = self.host
        if why == "timeout" and call.kind == "http":
            # Envoy's async client times out through its router: a local 504 reply that the plugin
            # receives as a response (onHttpCallFailure is only for resets).
            call.response = UpstreamResponse.model_validate({
                "status": 504,
                "headers": [["content-length", "24"], ["content-type", "text/plain"]],
                "body": "upstream request timeout",
            })
            self._deliver_callout(call)
            return
        if why == "timeout":
            host.callouts.pop(call.token, None)
            host.status = (4, b"Deadline Exceeded")  # gRPC DEADLINE_EXCEEDED
            self._callback(self.root, "proxy_on_grpc_close", self.root.id, call.token, 4)
            return
        host.callouts.pop(call.token, None)
        if call.kind == "http":
            # Envoy's onFailure: the response callback with no headers, body or trailers, and
            # proxy_get_status answering BrokenConnection (11), "reset".
            host.status = (11, b"reset")
            self._callback(self.root, "proxy_on_http_call_response", self.root.id, call.token, 0, 0, 0)
        else:
            host.status = (14, b"upstream unavailable")  # gRPC UNAVAILABLE
            self._callback(self.root, "proxy_on_grpc_close", self.root.id, call.token, 14)

    def _drain(self) -> None:
        """After the last packet: callout answers still arrive; ticks fire for --drain-ms."""
        deadline = self.now_ns + round(self.o.drain_ms * NS_PER_MS)
        self._run_timers(deadline)
        while self.heap and not self._vm_down():
            t, _, kind, payload = heapq.heappop(self.heap)
            if kind == "tick":
                continue
            self.now_ns = max(self.now_ns, t)
            self._fire(kind, payload)

    def _finish_all(self) -> None:
        for s in list(self.active.values()):
            if s.finished and not s.done_pending:
                continue
            r = s.result
            if s.done_pending:
                r.flags.append("done_not_called")
                s.done_pending = False
                if not self._stream_down(s):
                    self._log_and_delete(s)
                else:
                    self._record_final(s)
                continue
            if s.req.paused or s.resp.paused or s.held:
                r.flags.append("stalled")
            elif r.kind == "http" and not (s.req.ended and s.resp.ended):
                r.flags.append("incomplete")
            elif r.kind == "tcp":
                r.flags.append("incomplete")
            if s.held:
                r.undelivered.extend(i for _, i in s.held)
                s.held = []
            if self._stream_down(s):
                self._fail_stream(s)
                if not s.finished:  # passed through, but the trace ended before the stream did
                    s.finished = True
                    self.active.pop(s.id, None)
                    self._record_final(s)
            else:
                s.req.paused = s.resp.paused = None
                self._complete(s)
        if self.host is not None and self.plugin is not None:
            if isinstance(self.events, _EventTally):
                active = self.events.in_streams
            else:
                active = sum(1 for e in self.events
                             if e.stream is not None and e.kind in ("hostcall", "log"))
            if self.stream_count and active == 0 and self.vm_failure is None:
                self.warnings.append(
                    "the plugin did nothing during the streams (no host call, no log): "
                    f"is --root-id {self.root_id!r} the root id it registers?"
                )

    # -- TCP (L4) ----------------------------------------------------------------------------
    def _tcp_packet(self, conn: _Conn, index: int, p: Packet) -> None:
        s = conn.tcp_stream
        if s is not None and s.finished and "failed" in s.result.flags and not s.info.get("closed"):
            # The failed VM's connection is closed: its packets go nowhere until the trace closes
            # it too; after that the 5-tuple is a new connection.
            s.result.undelivered.append(index)
            if p.close is not None:
                s.info["closed"] = True
            return
        if s is None or s.finished:
            s = self._new_stream(conn, index, p, "tcp")
            conn.tcp_stream = s
            if not self._vm_down():
                try:
                    r = self._callback(s, "proxy_on_new_connection", s.id)
                    s.result.actions.append(("proxy_on_new_connection", "continue" if not r else "stop_iteration"))
                except VmFailed:
                    pass
                self._after_callback()
        if self._stream_down(s):
            self._fail_stream(s)
            if self.o.failure_policy == "open" and not s.finished:
                self._tcp_pass_through(s, p)
            else:
                s.result.undelivered.append(index)
                if p.close is not None:
                    s.info["closed"] = True
            return
        if s.finished:
            return
        down = p.forward_direction
        eos = p.close is not None
        if p.data is not None or eos:
            buf = s.tcp_down if down else s.tcp_up
            buf.extend(p.data or b"")
            name = "proxy_on_downstream_data" if down else "proxy_on_upstream_data"
            if down:
                s.tcp_down_live = True
            else:
                s.tcp_up_live = True
            try:
                r = self._callback(s, name, s.id, len(buf), int(eos))
            except VmFailed:
                self._fail_stream(s)
                if self.o.failure_policy == "open" and not s.finished:
                    self._tcp_pass_through(s, p, buffered=True)
                return
            finally:
                s.tcp_down_live = s.tcp_up_live = False
            action = "continue" if not r else "stop_iteration"
            s.result.actions.append((name, action))
            if action == "continue":
                key = "downstream" if down else "upstream"
                setattr(s.result, key, getattr(s.result, key) + bytes(buf))
                buf.clear()
            else:
                s.tcp_paused.add("down" if down else "up")
            self._after_callback()
        if eos:
            close = "proxy_on_downstream_connection_close" if down else "proxy_on_upstream_connection_close"
            peer = PeerType.REMOTE if p.close == "fin" else PeerType.LOCAL
            try:
                self._callback(s, close, s.id, int(peer))
            except VmFailed:
                self._fail_stream(s)
                return
            self._after_callback()
            s.finished_tcp = True  # type: ignore[attr-defined]
            s.req.ended = s.resp.ended = True
            data_down, data_up = s.tcp_down, s.tcp_up
            s.finished = False
            self._tcp_complete(s, data_down, data_up)

    def _tcp_pass_through(self, s: StreamContext, p: Packet, buffered: bool = False) -> None:
        """--failure-policy open on a TCP stream: data is forwarded without entering the plugin."""
        s.result.downstream += bytes(s.tcp_down)
        s.result.upstream += bytes(s.tcp_up)
        s.tcp_down.clear()
        s.tcp_up.clear()
        if buffered:
            pass
        elif p.forward_direction:
            s.result.downstream += p.data or b""
        else:
            s.result.upstream += p.data or b""
        if p.close is not None:
            s.finished = True
            self.active.pop(s.id, None)

    def _tcp_complete(self, s: StreamContext, down: bytearray, up: bytearray) -> None:
        s.result.downstream += bytes(down)
        s.result.upstream += bytes(up)
        down.clear()
        up.clear()
        s.finished = True
        try:
            r = self._callback(s, "proxy_on_done", s.id)
        except VmFailed:
            self.active.pop(s.id, None)
            return
        if r == 0:
            s.done_pending = True
            return
        try:
            self._callback(s, "proxy_on_log", s.id)
            self._callback(s, "proxy_on_delete", s.id)
        except VmFailed:
            pass
        self.active.pop(s.id, None)
        self.host.contexts.pop(s.id, None)

    def _tcp_resume(self, s: StreamContext, stype: int) -> None:
        key = "down" if stype == StreamType.DOWNSTREAM else "up"
        if key in s.tcp_paused:
            s.tcp_paused.discard(key)
            buf = s.tcp_down if key == "down" else s.tcp_up
            attr = "downstream" if key == "down" else "upstream"
            setattr(s.result, attr, getattr(s.result, attr) + bytes(buf))
            buf.clear()

    # -- result -----------------------------------------------------------------------------
    def _result(self, count: int, wall: float) -> Run:
        host = self.host
        metrics: dict[str, Any] = {}
        for m in sorted(host.metrics.values(), key=lambda m: m.name):
            entry: dict[str, Any] = {"type": m.type.name.lower()}
            if m.samples or m.type.name == "HISTOGRAM":
                entry["samples"] = list(m.samples)
            else:
                entry["value"] = m.value
            metrics[m.name] = entry
        p = self.plugin
        return Run(
            plugin={
                "file": p.name,
                "sha256": p.sha256,
                "abi": p.abi,
                "size": len(p.wasm),
            },
            inputs={
                "root_id": self.root_id,
                "vm_id": self.o.vm_id,
                "configuration": _text(self.configuration),
                "vm_configuration": _text(self.vm_configuration),
                "environment": dict(sorted(self.environment.items())),
                "log_level": self.log_level,
                "seed": self.o.seed,
                "start_time_ns": self.o.start_epoch_ns,
                "failure_policy": self.o.failure_policy,
                "lenient": bool(p.lenient_notes),
                "plugin_name": self.o.plugin_name or self.root_id,
                "properties": _effective_properties(self.trace.properties, self.o.properties),
                "drain_ms": int(self.o.drain_ms) if self.o.drain_ms == int(self.o.drain_ms)
                else self.o.drain_ms,
                "fail_fast": self.o.fail_fast,
                "budget": self.o.limits.fuel,
                "max_memory": self.o.limits.max_memory,
            },
            runtime=self.o.runtime,
            runtime_version=self.runtime.version(),
            streams=self.streams,
            events=self.events,
            failures=self.failures,
            metrics=metrics,
            log_counts=dict(sorted(host.log_counts.items())),
            warnings=self.warnings,
            notes=self.notes,
            vm_failure=self.vm_failure,
            refused_configuration=self.refused,
            packets=count,
            end_ns=self.now_ns,
            fuel=self.instance.fuel_consumed() if self.instance is not None else 0,
            wall_seconds=wall,
        )


# -- Envoy's views of a packet -------------------------------------------------------------
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
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in p.query_params.items())
        path += ("&" if "?" in path else "?") + query
    base = {":method": p.method or "GET", ":path": path, ":authority": host, ":scheme": p.scheme}
    base.update(pseudo)
    pairs = [(k.encode(), v.encode()) for k, v in base.items()]
    return pairs + [(n.encode(), v.encode()) for n, v in rest]


def response_headers(p: Packet) -> Pairs:
    other = [(n.lower(), v) for n, v in p.headers or []]
    status = next((v for n, v in other if n == ":status"), str(p.status))
    return [(b":status", status.encode())] + [
        (n.encode(), v.encode()) for n, v in other if n != ":status"
    ]


def _local_reply_headers(lr: LocalReply) -> Pairs:
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


def _headers_action(r: int | None, abi: str, local_reply: bool) -> str:
    """cpp-host's reading of a headers callback result (ABI.md 6.3)."""
    if local_reply:
        return "stop_all_iteration_and_watermark"
    if r is None or r == 0:
        return "continue"
    if r == 2:
        return "continue_and_end_stream"
    if r > 4 or (r == 1 and abi != V010):
        return "stop_all_iteration_and_watermark"
    return HEADER_ACTIONS[r]


def _data_action(r: int | None, local_reply: bool) -> str:
    if local_reply:
        return "stop_iteration_no_buffer"
    if r is None or r == 0:
        return "continue"
    return DATA_ACTIONS.get(r, "stop_iteration_no_buffer")


def _coalesce_body(m: Message) -> None:
    """On resume after a headers pause, Envoy hands the whole buffered body to one callback."""
    bodies = []
    while m.pending and m.pending[0][0] == "body":
        bodies.append(m.pending.popleft())
    if bodies:
        data = b"".join(b for _, b, _ in bodies)
        m.pending.appendleft(("body", data, bodies[-1][2]))


def _pairs(headers: Iterable[tuple[str, str]] | None) -> Pairs:
    return [(n.lower().encode(), v.encode()) for n, v in headers or []]


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _effective_properties(trace: dict[str, Any] | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The properties the trace sets, with the command line's overrides, sorted by path."""
    return dict(sorted({**(trace or {}), **overrides}.items()))


def _pick(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _b(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


CALLBACK_ARGS: dict[str, tuple[str, ...]] = {
    "proxy_on_context_create": ("context_id", "parent_context_id"),
    "proxy_on_vm_start": ("root_context_id", "vm_configuration_size"),
    "proxy_on_configure": ("root_context_id", "plugin_configuration_size"),
    "proxy_on_request_headers": ("context_id", "headers", "end_of_stream"),
    "proxy_on_response_headers": ("context_id", "headers", "end_of_stream"),
    "proxy_on_request_body": ("context_id", "body_size", "end_of_stream"),
    "proxy_on_response_body": ("context_id", "body_size", "end_of_stream"),
    "proxy_on_request_trailers": ("context_id", "trailers"),
    "proxy_on_response_trailers": ("context_id", "trailers"),
    "proxy_on_done": ("context_id",),
    "proxy_on_log": ("context_id",),
    "proxy_on_delete": ("context_id",),
    "proxy_on_tick": ("root_context_id",),
    "proxy_on_http_call_response": ("root_context_id", "token", "headers", "body_size", "trailers"),
    "proxy_on_grpc_receive_initial_metadata": ("root_context_id", "token", "elements"),
    "proxy_on_grpc_receive": ("root_context_id", "token", "message_size"),
    "proxy_on_grpc_receive_trailing_metadata": ("root_context_id", "token", "elements"),
    "proxy_on_grpc_close": ("root_context_id", "token", "status_code"),
    "proxy_on_queue_ready": ("root_context_id", "queue_id"),
    "proxy_on_new_connection": ("context_id",),
    "proxy_on_downstream_data": ("context_id", "data_size", "end_of_stream"),
    "proxy_on_upstream_data": ("context_id", "data_size", "end_of_stream"),
    "proxy_on_downstream_connection_close": ("context_id", "peer"),
    "proxy_on_upstream_connection_close": ("context_id", "peer"),
    "main": ("argc", "argv"),
}
BOOL_RESULTS = {"proxy_on_vm_start", "proxy_on_configure", "proxy_on_done"}


def _callback_args(name: str, args: tuple[int, ...]) -> dict[str, Any]:
    names = CALLBACK_ARGS.get(name, ())
    out: dict[str, Any] = {}
    for i, v in enumerate(args):
        key = names[i] if i < len(names) else f"arg{i}"
        if key == "end_of_stream":
            out[key] = bool(v)
        elif key == "peer":
            out[key] = PeerType(v).name.lower() if v <= 2 else v
        else:
            out[key] = v
    return out


def _callback_result(name: str, result: int | None) -> Any:
    if result is None:
        return None
    if name in BOOL_RESULTS:
        return bool(result)
    if name in ("proxy_on_request_headers", "proxy_on_response_headers"):
        return HEADER_ACTIONS.get(result, result)
    if name.endswith("_body") or name.endswith("_data"):
        return DATA_ACTIONS.get(result, result)
    if name.endswith("_trailers"):
        return {0: "continue", 1: "stop_iteration"}.get(result, result)
    if name == "proxy_on_new_connection":
        return {0: "continue", 1: "stop_iteration"}.get(result, result)
    return result
