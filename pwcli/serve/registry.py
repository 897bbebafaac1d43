"""The server's VMs: one ``pwcli.Session`` per ``project:name`` key, each used by one call at a
time, its events fanned out to the StreamEvents subscribers, its finished streams kept to a
bound."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..engine import Session
from ..events import Event
from ..eventline import event_line

KEEP_STREAMS = 1000  # finished streams a VM's report keeps (older ones are counted, then dropped)


@dataclass
class Vm:
    key: str
    project: str
    name: str
    wasm_file: str
    runtime: str
    log_level: int
    created: float = field(default_factory=time.time)
    session: Session = None  # type: ignore[assignment]
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribers: list[queue.Queue[Any]] = field(default_factory=list)

    def publish(self, ev: Event) -> None:
        if self.subscribers:
            line = event_line(ev)
            for q in list(self.subscribers):
                q.put(line)


class Registry:
    def __init__(self, keep_streams: int = KEEP_STREAMS) -> None:
        self.vms: dict[str, Vm] = {}
        self.lock = threading.Lock()
        self.keep_streams = keep_streams

    def add(self, vm: Vm) -> bool:
        with self.lock:
            if vm.key in self.vms:
                return False
            self.vms[vm.key] = vm
            return True

    def remove(self, key: str) -> Vm | None:
        with self.lock:
            return self.vms.pop(key, None)

    def select(self, project: str, name: str) -> list[Vm]:
        """``project:name``, or every VM of the project when ``name`` is empty (the original sent
        to every VM of every project: pwcli keeps to the project)."""
        with self.lock:
            if name:
                vm = self.vms.get(f"{project}:{name}")
                return [vm] if vm is not None else []
            return [vm for vm in self.vms.values() if vm.project == project]

    def listing(self, pattern: str) -> list[Vm]:
        with self.lock:
            return [vm for key, vm in sorted(self.vms.items()) if not pattern or pattern in key]

    @contextmanager
    def using(self, vms: list[Vm]) -> Iterator[None]:
        """Each VM used by one call at a time (locks taken in key order: no deadlock)."""
        ordered = sorted(vms, key=lambda v: v.key)
        for vm in ordered:
            vm.lock.acquire()
        try:
            yield
        finally:
            for vm in reversed(ordered):
                vm.lock.release()
