"""Real-time pacing (as tcpreplay paces) and the progress bar of long replays.

Pacing only decides *when* a packet is handed to the replay: the plugin's clock stays the virtual
one (each packet's ``delta_ms``), so the report is the same paced or not. ``Pacer`` schedules
packet ``i``

- ``multiplier=X``: at its recorded time divided by X (``--realtime`` is ``--multiplier 1``; 2 is
  twice as fast);
- ``pps=N``: at i / N seconds from the start,

sleeps until then, and records how late each packet was handed over (the drift). Clock and sleep are
injectable, so tests need not sleep.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


class Pacer:
    """``pacer(index, virtual_ns)`` waits until packet ``index`` is due."""

    def __init__(
        self,
        multiplier: float | None = 1.0,
        *,
        pps: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if (multiplier is None) == (pps is None):
            raise ValueError("a Pacer paces by exactly one of multiplier and pps")
        if multiplier is not None and multiplier <= 0:
            raise ValueError("multiplier must be > 0")
        if pps is not None and pps <= 0:
            raise ValueError("pps must be > 0")
        self.multiplier = multiplier
        self.pps = pps
        self.clock = clock
        self.sleep = sleep
        self.start: float | None = None
        self.packets = 0
        self.max_drift = 0.0  # seconds: the latest a packet was handed over
        self.total_drift = 0.0
        self.last_due = 0.0  # seconds from the start: the schedule's length so far

    def due(self, index: int, virtual_ns: int) -> float:
        """Seconds from the start at which packet ``index`` is due."""
        if self.pps is not None:
            return index / self.pps
        assert self.multiplier is not None
        return virtual_ns / 1e9 / self.multiplier

    def __call__(self, index: int, virtual_ns: int) -> None:
        now = self.clock()
        if self.start is None:
            self.start = now
        due = self.due(index, virtual_ns)
        target = self.start + due
        if target > now:
            self.sleep(target - now)
            now = self.clock()
        drift = max(0.0, now - target)
        self.packets += 1
        self.total_drift += drift
        self.max_drift = max(self.max_drift, drift)
        self.last_due = due

    def stats(self) -> dict[str, float]:
        took = (self.clock() - self.start) if self.start is not None else 0.0
        return {"packets": self.packets, "max_drift": self.max_drift,
                "total_drift": self.total_drift, "last_due": self.last_due, "took": took}

    def merge(self, stats: dict[str, float]) -> None:
        """Add a worker's figures (--workers: each worker paces its own packets)."""
        if not stats:
            return
        self.packets += int(stats["packets"])
        self.max_drift = max(self.max_drift, stats["max_drift"])
        self.total_drift += stats["total_drift"]
        self.last_due = max(self.last_due, stats["last_due"])
        self.took = max(getattr(self, "took", 0.0), stats["took"])

    @property
    def mean_drift(self) -> float:
        return self.total_drift / self.packets if self.packets else 0.0

    def describe(self) -> str:
        """One line for stderr: the schedule and how far delivery drifted from it."""
        how = f"--pps {self.pps:g}" if self.pps is not None else f"--multiplier {self.multiplier:g}"
        took = (self.clock() - self.start) if self.start is not None else getattr(self, "took", 0.0)
        return (f"pacing ({how}): {self.packets} packets, schedule {self.last_due:.3f} s, "
                f"took {took:.3f} s, drift behind schedule: largest "
                f"{self.max_drift * 1000:.1f} ms, mean {self.mean_drift * 1000:.2f} ms")


class Progress:
    """A rich progress bar on stderr for long replays, drawn only when stderr is a terminal.

    Called once per packet like a Pacer; redraws at most every ``every`` seconds and only appears
    once the replay has run for ``after`` seconds."""

    def __init__(self, total: int | None, *, after: float = 1.0, every: float = 0.2,
                 file: Any = None) -> None:
        self.total = total
        self.after = after
        self.every = every
        self.file = file or sys.stderr
        self.started = time.monotonic()
        self.next_check = self.started + after
        self.bar: Any = None
        self.task: Any = None
        self.count = 0

    @staticmethod
    def wanted(file: Any = None) -> bool:
        f = file or sys.stderr
        try:
            return bool(f.isatty())
        except (AttributeError, ValueError):
            return False

    def __call__(self, index: int, virtual_ns: int) -> None:
        self.count = index + 1
        if index & 255:
            return
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + self.every
        if self.bar is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import (
                Progress as Bar,
            )

            self.bar = Bar(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
                           TextColumn("packets"), TimeElapsedColumn(),
                           console=Console(file=self.file), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("replay", total=self.total)
        self.bar.update(self.task, completed=self.count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def chain(*hooks: Callable[[int, int], None] | None) -> Callable[[int, int], None] | None:
    """One per-packet hook calling each of ``hooks`` (None ones skipped)."""
    live = [h for h in hooks if h is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def both(index: int, virtual_ns: int) -> None:
        for h in live:
            h(index, virtual_ns)

    return both
