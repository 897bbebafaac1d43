"""What every stream shares, HTTP or TCP: its context, its end (``proxy_on_done``, ``proxy_on_log``,
``proxy_on_delete``), a reset by the plugin, a failure of its VM, and how the end of the trace
leaves it.

The end follows proxy-wasm-cpp-host's ``ContextBase::onLog``/``onDone``/``onDelete`` as Envoy calls
them (``source/extensions/common/wasm/context.cc``: ``Context::log``, then ``Context::onDestroy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..events import StreamResult
from ..host.contexts import StreamContext
from ..host.spec import StreamType
from .vm import VmFailed

if TYPE_CHECKING:
    from .engine import Engine

HTTP_STREAM_TYPES = (StreamType.HTTP_REQUEST, StreamType.HTTP_RESPONSE)


class Stream:
    kind: ClassVar[str] = ""

    def __init__(self, engine: Engine, ctx: StreamContext) -> None:
        self.e = engine
        self.ctx = ctx
        self.result: StreamResult = ctx.result

    @property
    def id(self) -> int:
        return self.ctx.id

    @property
    def down(self) -> bool:
        """The stream's VM failed (a reloaded VM never sees the streams of the one it replaced)."""
        return self.e.stream_down(self.ctx)

    # -- what the plugin asks for -----------------------------------------------------------
    def resume(self, stream_type: int) -> None:
        if stream_type in HTTP_STREAM_TYPES:
            self.resume_message(stream_type)
        else:
            self.resume_connection(stream_type)

    def resume_message(self, stream_type: int) -> None:
        what = "request" if stream_type == StreamType.HTTP_REQUEST else "response"
        self.e.vm.host.record("note", "continue_ignored", {"stream": what, "reason": "not paused"},
                              ctx=self.ctx)

    def resume_connection(self, stream_type: int) -> None:
        """An HTTP stream has no connection side to resume: nothing happens."""

    def close(self, stream_type: int) -> None:
        """proxy_close_stream: Envoy resets the stream (HTTP) or closes the connection (TCP)."""
        if self.ctx.finished:
            return
        self.result.flags.append("reset_by_plugin")
        self.e.vm.host.record("note", "stream_reset",
                              {"stream": StreamType(stream_type).name.lower()}, ctx=self.ctx)
        self.drop_pending()
        self.complete()

    def drop_pending(self) -> None:
        """Forget what has not reached the plugin yet."""

    # -- the end ----------------------------------------------------------------------------
    # How a stream ends, in Envoy's order. HTTP: the access log runs before the filter is
    # destroyed (``Context::log``, then ``Context::onDestroy``); a network filter's connection is
    # destroyed first and logged after (TcpStream). Both checked against Envoy in tests/envoy.
    ENDING = ("proxy_on_log", "proxy_on_done", "proxy_on_delete")

    def complete(self) -> None:
        """The stream is over: the ENDING callbacks. ``proxy_on_done``'s result does not delay the
        delete of a stream context: cpp-host's ``WasmBase::done`` only ever waits for root
        contexts."""
        s = self.ctx
        if s.finished:
            return
        s.finished = True
        self.record_final()
        if self.down:
            self.e.forget(self)
            return
        vm = self.e.vm
        try:
            for callback in self.ENDING:
                s.in_log = callback == "proxy_on_log"
                vm.call(s, callback, s.id)
                s.in_log = False
        except VmFailed:
            pass
        finally:
            s.in_log = False
            vm.host.contexts.pop(s.id, None)
            self.e.forget(self)
        self.e.apply_effects()

    def record_final(self) -> None:
        """Copy what passed through the filter into the stream's result."""
        raise NotImplementedError

    def fail(self) -> None:
        """The VM failed under this stream: closed (fail-closed) or passed through (open)."""
        s = self.ctx
        if s.finished:
            return
        e = self.e
        if self.result.failure is None and e.vm.failure is not None and (
            e.options.failure_policy != "open"
        ):
            self.result.failure = e.vm.failure
        if e.options.failure_policy == "open":
            self.pass_through()
            return
        s.finished = True
        e.forget(self)
        self.result.flags.append("failed")
        self.fail_closed()

    def fail_closed(self) -> None:
        """What the client sees of a fail-closed stream."""

    def pass_through(self) -> None:
        """--failure-policy open: what arrives is forwarded without entering the plugin."""
        if "passed_through" not in self.result.flags:
            self.result.flags.append("passed_through")

    def stalled(self) -> bool:
        return False

    def unfinished_flag(self) -> str:
        return "incomplete"

    def finish_at_end(self) -> None:
        """The trace ended: run the stream's end as Envoy would when the connection goes away."""
        s, r = self.ctx, self.result
        if self.stalled():
            r.flags.append("stalled")
        elif flag := self.unfinished_flag():
            r.flags.append(flag)
        self.release_held()
        if self.down:
            self.fail()
            if not s.finished:  # passed through, but the trace ended before the stream did
                s.finished = True
                self.e.forget(self)
                self.record_final()
        else:
            s.req.paused = s.resp.paused = None
            self.complete()

    def release_held(self) -> None:
        """Packets held back at the end are reported as undelivered."""
