"""One TCP connection through a network filter: ``proxy_on_new_connection``, data in each direction,
the close of each side, pausing and resuming the data.

Follows Envoy's network filter callbacks as proxy-wasm-cpp-host calls them
(``Context::onNewConnection``, ``onData``/``onWrite``, ``onEvent``:
``onDownstreamConnectionClose``/``onUpstreamConnectionClose``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..host.spec import PeerType, StreamType
from ..trace import Packet
from .callbacks import continue_or_stop
from .stream import Stream
from .vm import VmFailed

if TYPE_CHECKING:
    from ..host.contexts import StreamContext
    from .engine import Engine

DOWN, UP = True, False
# What the plugin sees when a side closes, through Envoy's tcp_proxy, when the other side closes in
# turn as a typical peer does (checked against Envoy in tests/envoy): the other side's end of data
# and both close events, with the peer Envoy reports (proxy-wasm PeerType); a reset ends at once.
CLOSES: dict[tuple[bool, str], list[tuple[str, Any]]] = {
    (DOWN, "fin"): [("data", UP), ("upstream", PeerType.UNKNOWN), ("downstream", PeerType.LOCAL)],
    (UP, "fin"): [("upstream", PeerType.UNKNOWN), ("data", DOWN), ("downstream", PeerType.REMOTE)],
    (DOWN, "rst"): [("downstream", PeerType.REMOTE)],
    (UP, "rst"): [("downstream", PeerType.LOCAL)],
}


class TcpStream(Stream):
    kind: ClassVar[str] = "tcp"
    ENDING = ("proxy_on_done", "proxy_on_log", "proxy_on_delete")

    def __init__(self, engine: Engine, ctx: StreamContext) -> None:
        super().__init__(engine, ctx)
        self.paused: set[str] = set()  # "down" | "up": the plugin stopped that side's data

    def open(self) -> None:
        """proxy_on_new_connection, once the stream's context exists."""
        s = self.ctx
        try:
            r = self.e.vm.call(s, "proxy_on_new_connection", s.id)
            self.result.actions.append(("proxy_on_new_connection", continue_or_stop(r)))
        except VmFailed:
            pass
        self.e.apply_effects()

    def packet(self, p: Packet, index: int) -> None:
        s = self.ctx
        if self.down:
            self.fail()
            if self.e.options.failure_policy == "open" and not s.finished:
                self._forward_unfiltered(p)
            else:
                self.result.undelivered.append(index)
                if p.close is not None:
                    s.info["closed"] = True
            return
        if s.finished:
            return
        down = p.forward_direction
        if p.close is None:
            if p.data is not None:
                self._data(down, p, False)
            return
        if p.close == "rst":
            if p.data and not self._data(down, p, False):
                return
        elif not self._data(down, p, True):
            return
        self._close(down, p.close)

    def _data(self, down: bool, p: Packet | None, eos: bool) -> bool:
        """A data callback for one side (``p`` None: no new data, as at a close)."""
        s = self.ctx
        buf = s.tcp_down if down else s.tcp_up
        buf.extend(p.data or b"" if p is not None else b"")
        name = "proxy_on_downstream_data" if down else "proxy_on_upstream_data"
        if down:
            s.tcp_down_live = True
        else:
            s.tcp_up_live = True
        try:
            r = self.e.vm.call(s, name, s.id, len(buf), int(eos))
        except VmFailed:
            self.fail()
            if self.e.options.failure_policy == "open" and not s.finished and p is not None:
                self._forward_unfiltered(p, buffered=True)
            return False
        finally:
            s.tcp_down_live = s.tcp_up_live = False
        action = continue_or_stop(r)
        self.result.actions.append((name, action))
        if action == "continue":
            self._forward("down" if down else "up")
        else:
            self.paused.add("down" if down else "up")
        self.e.apply_effects()
        return True

    def _close(self, down: bool, how: str) -> None:
        """The connection ends as it ends through Envoy's tcp_proxy (see CLOSES)."""
        for step, arg in CLOSES[(down, how)]:
            if step == "data":
                if not self._data(arg, None, True):
                    return
                continue
            name = f"proxy_on_{step}_connection_close"
            try:
                self.e.vm.call(self.ctx, name, self.ctx.id, int(arg))
            except VmFailed:
                self.fail()
                return
            self.e.apply_effects()
        s = self.ctx
        s.req.ended = s.resp.ended = True
        s.finished = False
        self._forward("down")
        self._forward("up")
        self.complete()

    def _forward(self, side: str) -> None:
        """The side's buffered data goes on (what the plugin still held is flushed with it)."""
        s, r = self.ctx, self.result
        if side == "down":
            r.downstream += bytes(s.tcp_down)
            s.tcp_down.clear()
        else:
            r.upstream += bytes(s.tcp_up)
            s.tcp_up.clear()

    def resume_connection(self, stream_type: int) -> None:
        side = "down" if stream_type == StreamType.DOWNSTREAM else "up"
        if side in self.paused:
            self.paused.discard(side)
            self._forward(side)

    def _forward_unfiltered(self, p: Packet, buffered: bool = False) -> None:
        """--failure-policy open: data is forwarded without entering the plugin."""
        self._forward("down")
        self._forward("up")
        if not buffered:
            if p.forward_direction:
                self.result.downstream += p.data or b""
            else:
                self.result.upstream += p.data or b""
        if p.close is not None:
            self.ctx.finished = True
            self.e.forget(self)

    def record_final(self) -> None:
        self._forward("down")
        self._forward("up")
