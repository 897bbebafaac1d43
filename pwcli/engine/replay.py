"""``replay()``: a trace's packets sent through a ``Session``; the trace's expectations checked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..events import Event, StreamResult
from ..plugin import Plugin
from ..trace import Packet, Trace
from .options import ReplayOptions
from .run import Run
from .session import Session

if TYPE_CHECKING:
    from ..tracestream import StreamedTrace


def replay(plugin: Plugin, trace: Trace, options: ReplayOptions | None = None, *,
           on_event: Callable[[Event], None] | None = None,
           on_stream: Callable[[StreamResult], None] | None = None,
           check: bool = True) -> Run:
    """Replay ``trace`` through ``plugin``; returns the Run. Raises PwcliError for bad input only.

    When the trace has expect blocks (and ``check``), ``run.expectations`` holds their outcome.
    ``on_event`` and ``on_stream`` are Session's (events as they happen; streaming mode)."""
    from ..expect import Checker, has_expectations

    options = options or ReplayOptions()
    streamed = getattr(trace, "streaming", False)
    checker = Checker(trace) if check and not streamed and has_expectations(trace) else None
    session = Session(plugin, options, trace, on_event, on_stream=on_stream,
                      checked=not streamed and options.loop == 1)
    if checker is not None:
        session.after_packet = checker.after_packet
    session.feed(packets_of(trace, options.loop))
    run = session.close()
    if checker is not None:
        run.expectations = checker.evaluate(run)
    return run


def packets_of(trace: Trace | StreamedTrace, loops: int = 1) -> Iterator[Packet]:
    """The packets of every loop: from the second loop on, a packet's connection key carries
    the loop number, so each loop's connections are new connections (new streams and ids)."""
    for loop in range(loops):
        for p in trace.packets:
            if loop:
                p = p.model_copy()
                p.__dict__["key"] = (*p.key, loop)  # the cached 5-tuple, made distinct
            yield p
