"""``Session``: the engine fed one packet at a time, the public way to drive a plugin.

    with pwcli.Session("filter.wasm") as s:
        r = s.http({"method": "GET", "uri_path": "/"}, {"status": 200})
        assert ("x-added", "1") in r.request_headers
        s.advance(5_000)                      # ticks and late callout answers fire
    run = s.run                               # the Run, as ``replay()`` returns it

``replay()`` is a loop of ``send`` over a trace's packets; the gRPC server keeps one Session per VM.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import TraceError
from ..events import Event, StreamResult
from ..host.contexts import Message
from ..plugin import Plugin, load_plugin
from ..trace import FlowChecker, Packet, Trace, parse_packet
from .engine import Engine
from .http import HttpStream
from .options import LEVELS, NS_PER_MS, ReplayOptions
from .run import Run, build_run

GC_EVERY = 20_000  # packets between two young-generation collections (automatic GC is off)
HTTP_CLIENT, HTTP_SERVER = ("10.0.0.1", 50000), ("10.0.0.2", 80)  # Session.http's defaults


class Session:
    """A plugin VM fed incrementally: ``send`` packets, ``advance`` the virtual clock, ``close``.

    ``trace`` gives trace-level settings (the ``plugin`` block, ``properties``, ``upstreams``); its
    packets are not replayed. ``on_event`` is called with each event as it happens. ``on_stream``
    (streaming mode) receives each finished stream, which is then forgotten: memory stays flat and
    ``close()``'s Run keeps counts only. ``shared`` and ``shard`` are for ``--workers``.
    """

    def __init__(self, plugin: Plugin | str | Path, options: ReplayOptions | None = None,
                 trace: Trace | None = None, on_event: Callable[[Event], None] | None = None, *,
                 on_stream: Callable[[StreamResult], None] | None = None, shared: Any = None,
                 shard: tuple[int, int] | None = None, checked: bool = False) -> None:
        if not isinstance(plugin, Plugin):
            plugin = load_plugin(plugin)
        self.trace = trace if trace is not None else Trace(packets=[], source="<session>")
        self.options = options or ReplayOptions()
        self.engine = e = Engine(plugin, self.trace, self.options, sink=on_event,
                                 stream_sink=on_stream)
        if shared is not None:
            e.shared = shared
        # Packets of a trace validated as a whole (``checked``) were paired already.
        self.flow = None if checked and shard is None else FlowChecker(self.trace.source)
        e.flow = self.flow
        self.shard = shard
        self.after_packet: Callable[[int, Session], None] | None = None  # expectations' hook
        self.index = 0  # packets sent (all of them, with --workers)
        self.delivered = 0  # packets this session delivered to its engine
        self.input_error: TraceError | None = None
        self.run: Run | None = None
        self._stream_number = 0  # --workers: streams opened in the whole trace
        self._clock_ns = 0  # --workers: the whole trace's time
        self._http_calls = 0
        self.forgotten = 0  # finished streams dropped by forget_finished
        self._started = time.monotonic()
        e.start(shard=shard is not None)
        self._poll = getattr(e.shared, "poll", None) if shard is not None else None

    # -- feeding ----------------------------------------------------------------------------
    def send(self, packet: Packet | dict[str, Any]) -> None:
        """Advance the clock by the packet's ``delta_ms`` and deliver it.

        A bad packet raises TraceError ("packet N: field: ...") and nothing of it is applied."""
        self._check_open()
        index = self.index
        p = parse_packet(packet, index, self.trace.source)
        cid = self.flow.check(index, p) if self.flow is not None else 0
        e = self.engine
        if e.vm.fail_fast_hit:
            e.warnings.append(f"--fail-fast: stopped before packet {index}")
            self.index += 1
            return
        self.index += 1
        if self.shard is not None:
            e.next_ordinal = None
            if self.flow.opened:  # type: ignore[union-attr]
                e.next_ordinal = self._stream_number
                self._stream_number += 1
            self._clock_ns += round(p.delta_ms * NS_PER_MS)
            if cid % self.shard[1] != self.shard[0]:
                return
            target = self._clock_ns
        else:
            target = e.clock.now_ns + round(p.delta_ms * NS_PER_MS)
        if self.options.pace is not None:
            self.options.pace(index, target)
        e.clock.run_until(target)
        e.packet(index, p)
        if self.after_packet is not None:
            self.after_packet(index, self)
        self.delivered += 1
        if self._poll is not None and e.vm.host is not None:
            self._poll()  # queues of this worker filled by another one
            e.apply_effects()
        if self.index % GC_EVERY == 0:
            if e.streaming:
                e.sweep()
            gc.collect(1)

    def feed(self, packets: Iterable[Packet]) -> None:
        """``send`` each packet; a bad one stops the feed and is kept as ``input_error`` (the Run
        reports what ran before it). Stops early after a --fail-fast failure."""
        with paused_gc():
            self._feed(iter(packets))

    def _feed(self, it: Iterator[Packet]) -> None:
        while True:
            try:
                p = next(it)
                if self.engine.vm.fail_fast_hit:
                    self.engine.warnings.append(f"--fail-fast: stopped before packet {self.index}")
                    return
                self.send(p)
            except StopIteration:
                return
            except TraceError as exc:
                self.input_error = exc
                return

    def advance(self, ms: float) -> None:
        """Move the virtual clock forward: ticks and callout answers due by then fire."""
        self._check_open()
        self.engine.clock.run_until(self.engine.clock.now_ns + round(ms * NS_PER_MS))

    def http(self, request: Packet | dict[str, Any],
             response: Packet | dict[str, Any] | None = None) -> StreamResult:
        """One stream: the request (and the response, when given) on a connection of its own;
        returns that stream's result (as it stands, flagged ``open``, when it has not ended).
        Addresses default to 10.0.0.1:(50000+n) -> 10.0.0.2:80, a new connection per call."""
        self._http_calls += 1
        client = (HTTP_CLIENT[0], HTTP_CLIENT[1] + self._http_calls)
        req = _with_addresses(request, client, HTTP_SERVER, forward=True)
        first = self.engine.stream_count
        self.send(req)
        if response is not None:
            self.send(_with_addresses(response, client, HTTP_SERVER, forward=False))
        return self.stream_view(next(r for r in reversed(self.engine.streams)
                                     if r.index == first))

    def stream_view(self, r: StreamResult) -> StreamResult:
        """A finished stream's result; an open one's as it stands (a copy, flagged ``open``)."""
        return _open_view(r, self.live_messages(r)) if r.ctx in self.engine.active else r

    def set_log_level(self, level: str) -> None:
        """The plugin's log level from now on (trace, debug, info, warn, error, critical)."""
        if level not in LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
        e = self.engine
        e.inputs.log_level = level
        if e.vm.host is not None:
            e.vm.host.opts.log_level = LEVELS[level]
            e.vm.host.record("note", "log_level_set", {"level": level})

    def forget_finished(self, keep: int) -> int:
        """Drop the oldest finished streams (and their events) beyond ``keep``: a long-lived
        session's report stays bounded. Returns how many were dropped so far; ``snapshot`` and
        ``close`` say so in a warning."""
        e = self.engine
        if isinstance(e.events, list) and len(e.streams) > 2 * keep:
            finished = [r for r in e.streams if r.ctx not in e.active]
            drop = {r.index for r in finished[: max(0, len(e.streams) - keep)]}
            if drop:
                e.streams = [r for r in e.streams if r.index not in drop]
                e.events[:] = [ev for ev in e.events if ev.stream not in drop]
                for r in finished:
                    if r.index in drop:
                        e.stream_gen.pop(r.ctx, None)
                if self.flow is not None:  # connection ids come from the flow checker
                    e.demux.forget_idle()
                self.forgotten += len(drop)
        return self.forgotten

    # -- looking -----------------------------------------------------------------------------
    @property
    def now_ms(self) -> float:
        return self.engine.clock.now_ns / NS_PER_MS

    @property
    def events(self) -> list[Event]:
        return self.engine.events  # type: ignore[no-any-return]

    @property
    def streams(self) -> list[StreamResult]:
        return self.engine.streams

    @property
    def instance(self) -> Any:
        """The runtime's instance of the plugin (tests read guest memory through it)."""
        return self.engine.vm.instance

    def metric_values(self) -> dict[str, Any]:
        host = self.engine.vm.host
        if host is None:
            return {}
        return {m.name: (list(m.samples) if m.samples or m.type.name == "HISTOGRAM" else m.value)
                for m in host.metrics.values()}

    def live_messages(self, stream: StreamResult) -> tuple[Message, Message] | None:
        """An open HTTP stream's request and response as they stand, or None."""
        live = self.engine.active.get(stream.ctx) if stream.ctx else None
        if isinstance(live, HttpStream):
            return live.ctx.req, live.ctx.resp
        return None

    def snapshot(self) -> Run:
        """The report so far, without closing: open streams show what has passed so far and the
        flag ``open``."""
        e = self.engine
        run = build_run(e, self.delivered, time.monotonic() - self._started)
        run.streams = [self.stream_view(r) for r in e.streams]
        run.events = list(run.events)
        run.warnings, run.notes = list(run.warnings), list(run.notes)
        self._note_forgotten(run)
        return run

    def _note_forgotten(self, run: Run) -> None:
        if self.forgotten:
            run.warnings.append(f"{self.forgotten} earlier finished streams are not kept "
                                "(a long-lived session keeps its most recent ones)")

    # -- the end -----------------------------------------------------------------------------
    def close(self) -> Run:
        """Finish open streams as the end of a trace does, and return the Run (once)."""
        if self.run is not None:
            return self.run
        e = self.engine
        with paused_gc():
            if self.shard is not None and self.input_error is None and not e.vm.fail_fast_hit:
                e.clock.run_until(self._clock_ns)  # the whole trace's last packet time
            e.finish(drain=not e.vm.fail_fast_hit and self.input_error is None)
        self.run = build_run(e, self.delivered, time.monotonic() - self._started)
        self.run.input_error = self.input_error
        self._note_forgotten(self.run)
        return self.run

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.run is None and exc[0] is None:
            self.close()

    def _check_open(self) -> None:
        if self.run is not None:
            raise RuntimeError("this Session is closed")


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Automatic GC off while packets flow (a replay makes few cycles): ``send`` collects the
    young generation every GC_EVERY packets instead."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _with_addresses(packet: Packet | dict[str, Any], client: tuple[str, int],
                    server: tuple[str, int], *, forward: bool) -> Packet | dict[str, Any]:
    if isinstance(packet, Packet):
        return packet
    src, dst = (client, server) if forward else (server, client)
    defaults = {"sip": src[0], "sp": src[1], "dip": dst[0], "dp": dst[1],
                "forward_direction": forward}
    return {**defaults, **packet}


def _open_view(r: StreamResult, live: tuple[Message, Message] | None) -> StreamResult:
    view = copy.copy(r)
    view.flags = [*r.flags, "open"]
    if live is not None:
        view.request, view.response = copy.copy(r.request), copy.copy(r.response)
        for msg, out in zip(live, (view.request, view.response), strict=True):
            out.headers = list(msg.headers.pairs) if msg.headers is not None else None
            out.body = bytes(msg.forwarded) + bytes(msg.body)
            out.trailers = list(msg.trailers.pairs) if msg.trailers is not None else None
    return view
