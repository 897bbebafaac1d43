"""The virtual clock and what fires on it: the root context's tick, callout answers and failures,
shared-queue readiness. Time only moves when the trace (``delta_ms``), ``Session.advance`` or the
drain after the last packet moves it; the plugin never sees the wall clock.

Ticks follow Envoy's ``Context::setTickPeriod``/``onTick`` (``source/extensions/common/wasm/
context.cc``, ``wasm.cc``): one timer per root context, re-armed after each tick, restarted from now
when the period is set again.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any

from ..host.effects import TickPeriodSet
from ..host.host import Callout
from . import callouts
from .options import NS_PER_MS
from .vm import VmFailed

if TYPE_CHECKING:
    from .engine import Engine

PLUGIN_TIMERS = ("tick", "callout", "callout_fail", "queue_ready")


class Scheduler:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self.now_ns = 0
        self.heap: list[tuple[int, int, str, Any]] = []
        self.seq = itertools.count()
        self.tick_gen = 0  # a tick armed before the period last changed is stale

    def push(self, t_ns: int, kind: str, payload: Any) -> None:
        heapq.heappush(self.heap, (t_ns, next(self.seq), kind, payload))

    def arm_tick(self) -> None:
        self.tick_gen += 1
        root = self.e.vm.root
        period = root.tick_period_ms if root else 0
        if period > 0:
            self.push(self.now_ns + period * NS_PER_MS, "tick", self.tick_gen)

    def start_callout(self, call: Callout) -> None:
        t_ns, kind, payload = callouts.plan(call, self.now_ns)
        self.push(t_ns, kind, payload)

    def queue_ready(self, queue_id: int) -> None:
        self.push(self.now_ns, "queue_ready", queue_id)

    def drop_plugin_timers(self) -> None:
        """A reloaded VM starts without the failed VM's tick, calls and queue notices."""
        self.heap = [e for e in self.heap if e[2] not in PLUGIN_TIMERS]
        heapq.heapify(self.heap)

    def run_until(self, until: int) -> None:
        """Fire everything due up to ``until`` (virtual ns), then set the clock to ``until``."""
        vm = self.e.vm
        while self.heap and self.heap[0][0] <= until and not vm.down:
            t, _, kind, payload = heapq.heappop(self.heap)
            if kind == "tick" and payload != self.tick_gen:
                continue
            self.now_ns = max(self.now_ns, t)
            self._fire(kind, payload)
        self.now_ns = max(self.now_ns, until)

    def drain(self, drain_ms: float) -> None:
        """After the last packet: callout answers still arrive; ticks fire for ``drain_ms``."""
        self.run_until(self.now_ns + round(drain_ms * NS_PER_MS))
        vm = self.e.vm
        while self.heap and not vm.down:
            t, _, kind, payload = heapq.heappop(self.heap)
            if kind == "tick":
                continue
            self.now_ns = max(self.now_ns, t)
            self._fire(kind, payload)

    def _fire(self, kind: str, payload: Any) -> None:
        vm = self.e.vm
        host, root = vm.host, vm.root
        try:
            call = payload if kind == "callout" else payload[0] if kind == "callout_fail" else None
            if call is not None and call.cancelled:
                # Envoy drops the answer of a cancelled call (or of a closed unary call).
                host.record("note", "callout_cancelled", {"token": call.token})
            elif kind == "tick":
                vm.call(root, "proxy_on_tick", root.id)
                if not self._tick_reset():
                    self.arm_tick()
            elif kind == "callout":
                callouts.deliver(vm, payload)
            elif kind == "callout_fail":
                call, why = payload
                host.record("note", "callout_failed", {"token": call.token, "reason": why})
                callouts.deliver_failure(vm, call, why)
            elif kind == "queue_ready":
                vm.call(root, "proxy_on_queue_ready", root.id, payload)
        except VmFailed:
            pass
        finally:
            host.oob_maps = {}
            host.oob_buffers = {}
        self.e.apply_effects()

    def _tick_reset(self) -> bool:
        """The tick callback set the period again: that effect re-arms the timer itself."""
        return any(isinstance(x, TickPeriodSet) for x in self.e.vm.host.effects)
