"""The engine: one plugin VM, the connections and streams the packets open, the virtual clock, and
the effects of the plugin's host calls applied after each callback. Drivers (``Session``,
``replay()``, the workers) feed it packets; it knows nothing of where they come from.

Where a rule lives: the VM's life in ``vm.py``; connections in ``demux.py``; an HTTP stream in
``http.py``, a TCP one in ``tcp.py`` (what both share in ``stream.py``); time, ticks and callout
answers in ``scheduler.py`` and ``callouts.py``; the report's ``Run`` in ``run.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from ..events import Event, StreamResult
from ..host.contexts import StreamContext
from ..host.effects import (
    CalloutStarted,
    LocalReplySent,
    QueueReady,
    StreamClosed,
    StreamResumed,
    TickPeriodSet,
)
from ..host.host import SharedState
from ..plugin import Plugin
from ..textutil import hostport
from ..trace import FlowChecker, Packet, Trace
from .demux import Demux
from .http import HttpStream
from .options import Inputs, ReplayOptions
from .run import EventTally
from .scheduler import Scheduler
from .stream import Stream
from .vm import Vm, VmFailed

S = TypeVar("S", bound=Stream)


class Engine:
    def __init__(self, plugin: Plugin, trace: Trace, options: ReplayOptions, *,
                 sink: Callable[[Event], None] | None = None,
                 stream_sink: Callable[[StreamResult], None] | None = None) -> None:
        self.plugin = plugin
        self.trace = trace
        self.options = options
        self.inputs = Inputs.resolve(options, trace)
        self.envoy_headers = options.envoy_headers
        self.rng = random.Random()  # reseeded for each stream's x-request-id (messages.request_id)
        self.shared: Any = SharedState()
        self.sink = sink  # each event as it happens (--format jsonl)
        # Streaming mode: finished streams go to stream_sink and are dropped, events are counted,
        # not kept; memory stays flat however long the trace.
        self.stream_sink = stream_sink
        self.streaming = stream_sink is not None
        self.events: Any = EventTally() if self.streaming else []
        self.streams: list[StreamResult] = []
        self.active: dict[int, Stream] = {}  # context id -> the stream, until it is deleted
        self.warnings: list[str] = []
        self.notes: list[str] = list(plugin.lenient_notes)
        self.stream_count = 0
        self.next_ctx = 1
        self.stream_gen: dict[int, int] = {}  # stream context id -> the VM it was created on
        self.flow: FlowChecker | None = None  # pairs packets as they come (streamed traces)
        self.next_ordinal: int | None = None  # --workers: the stream number in the whole trace
        self.clock = Scheduler(self)
        self.vm = Vm(self)
        self.demux = Demux(self)
        self.vm_ok = False

    def start(self, shard: bool = False) -> bool:
        self.vm_ok = self.vm.start()
        if shard:
            self.next_ctx = 1 << 31  # stream contexts are numbered by the whole trace
        return self.vm_ok

    def new_context_id(self) -> int:
        cid = self.next_ctx
        self.next_ctx += 1
        return cid

    # -- packets and streams ----------------------------------------------------------------
    def packet(self, index: int, p: Packet) -> None:
        self.demux.packet(index, p, self.vm_ok)

    def stream_result(self, index: int, p: Packet, kind: str, ctx: int) -> StreamResult:
        number = self.stream_count if self.next_ordinal is None else self.next_ordinal
        r = StreamResult(number, ctx, kind, hostport(*p.client), hostport(*p.server), index)
        self.stream_count += 1
        self.streams.append(r)
        return r

    def open_stream(self, cls: type[S], conn_id: int, index: int, p: Packet) -> S:
        vm = self.vm
        if vm.failure is not None and self.options.failure_policy == "reload":
            vm.reload()
        # --workers: the id one replay of the whole trace gives (root 1, then streams in order)
        ctx_id = self.new_context_id() if self.next_ordinal is None else self.next_ordinal + 2
        self.stream_gen[ctx_id] = vm.generation
        now = self.clock.now_ns
        info = {
            "client": p.client,
            "server": p.server,
            "scheme": p.scheme,
            "connection": conn_id,
            "start_ns": now,
            "start_epoch_ns": self.options.start_epoch_ns + now,
        }
        result = self.stream_result(index, p, cls.kind, ctx_id)
        ctx = StreamContext(ctx_id, vm.root.id, result=result, info=info)
        stream = cls(self, ctx)
        vm.host.contexts[ctx_id] = ctx
        self.active[ctx_id] = stream
        if vm.down:
            return stream
        try:
            vm.call(ctx, "proxy_on_context_create", ctx_id, vm.root.id)
        except VmFailed:
            pass  # the stream fails when its first packet arrives
        self.apply_effects()
        return stream

    def stream_down(self, ctx: StreamContext) -> bool:
        return self.vm.failure is not None or self.stream_gen.get(ctx.id, self.vm.generation) != (
            self.vm.generation)

    def forget(self, stream: Stream) -> None:
        self.active.pop(stream.id, None)

    # -- effects ----------------------------------------------------------------------------
    def apply_effects(self) -> None:
        """Apply what the plugin asked for in the callbacks that just ran, until nothing is left.

        Within one batch: the tick timer, the callouts, the queue notices, then each stream's
        resets, resumes and local replies (a reset wins over resumes) in the order the streams
        opened."""
        vm = self.vm
        host = vm.host
        clock = self.clock
        while not vm.down and host.effects:
            batch, host.effects = host.effects, []
            per_stream: dict[int, list[Any]] = {}
            for fx in batch:
                if isinstance(fx, (StreamResumed, StreamClosed, LocalReplySent)):
                    per_stream.setdefault(fx.stream.id, []).append(fx)
            if any(isinstance(fx, TickPeriodSet) for fx in batch):
                clock.arm_tick()
            for fx in batch:
                if isinstance(fx, CalloutStarted):
                    clock.start_callout(fx.call)
            for fx in batch:
                if isinstance(fx, QueueReady):
                    clock.queue_ready(fx.queue_id)
            for sid in sorted(per_stream):
                stream = self.active.get(sid)
                if stream is not None:
                    self._apply_stream_effects(stream, per_stream[sid])

    def _apply_stream_effects(self, stream: Stream, effects: list[Any]) -> None:
        closed = next((fx for fx in effects if isinstance(fx, StreamClosed)), None)
        if closed is not None:
            stream.close(closed.stream_type)
            return
        for fx in effects:
            if isinstance(fx, StreamResumed):
                stream.resume(fx.stream_type)
            elif isinstance(stream, HttpStream) and stream.ctx.local_reply is fx.reply and (
                stream.ctx.req.started
            ):
                # Sent from another context's callback (an http call's answer, a tick): Envoy
                # sends it once that callback returns (Context::sendLocalResponse).
                stream.send_local_reply()

    # -- the end ----------------------------------------------------------------------------
    def finish(self, drain: bool = True) -> None:
        """The trace ended: late answers arrive (and ticks for --drain-ms), open streams end."""
        if drain:
            self.clock.drain(self.options.drain_ms)
        if self.vm_ok:
            self.demux.release_all()
        for stream in list(self.active.values()):
            if not stream.ctx.finished:
                stream.finish_at_end()
        if self.vm.host is not None:
            self._warn_if_idle()
        if self.streaming:
            self.sweep(final=True)

    def _warn_if_idle(self) -> None:
        if isinstance(self.events, EventTally):
            active = self.events.in_streams
        else:
            active = sum(1 for e in self.events
                         if e.stream is not None and e.kind in ("hostcall", "log"))
        if self.stream_count and active == 0 and self.vm.failure is None:
            self.warnings.append(
                "the plugin did nothing during the streams (no host call, no log): "
                f"is --root-id {self.inputs.root_id!r} the root id it registers?"
            )

    def sweep(self, final: bool = False) -> None:
        """Streaming mode: hand finished streams to stream_sink and forget them."""
        keep = []
        contexts = self.vm.host.contexts if self.vm.host is not None else {}
        for r in self.streams:
            if not final and r.ctx in self.active:
                keep.append(r)
                continue
            self.stream_gen.pop(r.ctx, None)
            ctx = contexts.get(r.ctx)
            if ctx is not None and not ctx.is_root and getattr(ctx, "finished", False):
                del contexts[r.ctx]
            self.events.add_stream(r)
            self.stream_sink(r)  # type: ignore[misc]
        self.streams = keep
