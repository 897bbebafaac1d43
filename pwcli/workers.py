"""--workers N: connections sharded by 5-tuple across processes, one VM each (as Envoy runs one VM
per worker thread), shared data and queues served to all of them by one server process (started
only for a plugin that imports a shared data or queue function).

Every worker reads the whole trace and pairs every packet (pwcli.trace.FlowChecker), so all of them
number connections, streams and contexts as one replay of the whole trace would: connection ``c``
(numbered from 1 in order of first packet) goes to worker ``c % N``; the stream opened by the k-th
stream-opening packet of the trace is stream ``k`` with context id ``k + 2`` (the root context is 1)
in whichever worker replays it; each packet is delivered at the virtual time the whole trace gives
it. The merged report is then the one-worker report for plugins that keep no shared state, set no
timers and make no calls answered on the root context (those run once per worker VM).

Merging: streams in stream order; VM-level (root context) events of worker 0 only, as every worker
starts its VM the same way; log counts without the other workers' start-up lines; metrics summed
(counters, gauges) or concatenated (histograms); warnings de-duplicated.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from multiprocessing.managers import BaseManager
from typing import Any

from .engine import ReplayOptions, Run, Session, packets_of
from .errors import InputError
from .host.effects import QueueReady
from .host.host import Host, SharedState
from .plugin import Plugin


class SharedServer:
    """Runs in the manager process: the one SharedState of the replay, and which worker owns which
    queue (a queue's readiness is delivered to its owner when it next polls)."""

    def __init__(self) -> None:
        self.state = SharedState()
        self.owner: dict[int, int] = {}
        self.pending: dict[int, list[int]] = {}

    def get_data(self, key: bytes) -> tuple[bytes, int] | None:
        return self.state.get_data(key)

    def set_data(self, key: bytes, value: bytes, cas: int) -> bool:
        return self.state.set_data(key, value, cas)

    def register_queue(self, vm_id: str, name: bytes, worker: int) -> int:
        qid = self.state.register_queue(vm_id, name, None)
        self.owner[qid] = worker
        return qid

    def resolve_queue(self, vm_id: str, name: bytes) -> int | None:
        return self.state.resolve_queue(vm_id, name)

    def enqueue(self, qid: int, value: bytes) -> bool:
        ok = self.state.enqueue(qid, value)
        if ok and qid in self.owner:
            self.pending.setdefault(self.owner[qid], []).append(qid)
        return ok

    def dequeue(self, qid: int) -> tuple[bool, bytes | None]:
        return self.state.dequeue(qid)

    def ready(self, worker: int) -> list[int]:
        return self.pending.pop(worker, [])


class _Manager(BaseManager):
    pass


_Manager.register("SharedServer", SharedServer)


class RemoteSharedState:
    """SharedState's interface (pwcli.host.host) over the server process."""

    def __init__(self, server: Any, worker: int) -> None:
        self.server = server
        self.worker = worker
        self.local_owner: dict[int, Host] = {}

    def get_data(self, key: bytes) -> tuple[bytes, int] | None:
        return self.server.get_data(key)  # type: ignore[no-any-return]

    def set_data(self, key: bytes, value: bytes, cas: int) -> bool:
        return bool(self.server.set_data(key, value, cas))

    def register_queue(self, vm_id: str, name: bytes, owner: Host | None) -> int:
        qid = int(self.server.register_queue(vm_id, name, self.worker))
        if owner is not None:
            self.local_owner[qid] = owner
        return qid

    def resolve_queue(self, vm_id: str, name: bytes) -> int | None:
        return self.server.resolve_queue(vm_id, name)  # type: ignore[no-any-return]

    def enqueue(self, qid: int, value: bytes) -> bool:
        ok = bool(self.server.enqueue(qid, value))
        self.poll()  # our own queue: ready at once, as with one worker
        return ok

    def dequeue(self, qid: int) -> tuple[bool, bytes | None]:
        return self.server.dequeue(qid)  # type: ignore[no-any-return]

    def poll(self) -> None:
        if not self.local_owner:
            return
        for qid in self.server.ready(self.worker):
            owner = self.local_owner.get(qid)
            if owner is not None:
                owner.effects.append(QueueReady(qid))


@dataclasses.dataclass
class _WorkerResult:
    worker: int
    run: Run | None = None
    error: BaseException | None = None
    startup_logs: dict[str, int] = dataclasses.field(default_factory=dict)
    startup_tally: dict[str, int] = dataclasses.field(default_factory=dict)
    startup_lines: int = 0
    pacing: dict[str, float] = dataclasses.field(default_factory=dict)


def replay_sharded(
    plugin: Plugin,
    trace: Any,
    options: ReplayOptions,
    workers: int,
    *,
    write_lines: Callable[[str], Any] | None = None,
    streaming: bool = False,
    expects: bool = False,
) -> Run:
    """Replay ``trace`` with ``workers`` processes; the merged Run. ``write_lines`` receives the
    JSON Lines event records (worker 0's, then worker 1's, ...), in chunks, when given."""
    if expects:
        raise InputError("expect blocks are checked packet by packet: run them with --workers 1")
    ctx = multiprocessing.get_context("spawn")  # a fork would inherit engine locks
    # The server process only when the plugin can reach shared data or queues at all.
    manager = _Manager(ctx=ctx) if shares_state(plugin) else None
    if manager is not None:
        manager.start()
    try:
        server = manager.SharedServer() if manager is not None else None  # type: ignore[attr-defined]
        with tempfile.TemporaryDirectory(prefix="pwcli-workers-") as tmp:
            paths = [os.path.join(tmp, f"{k}.jsonl") if write_lines else None
                     for k in range(workers)]
            queue = ctx.Queue()
            procs = [ctx.Process(target=_worker, name=f"pwcli-worker-{k}", daemon=True,
                                 args=(k, workers, plugin, trace, options, server, paths[k],
                                       streaming, queue))
                     for k in range(workers)]
            for p in procs:
                p.start()
            results: dict[int, _WorkerResult] = {}
            while len(results) < workers:
                res: _WorkerResult = queue.get()
                results[res.worker] = res
            for p in procs:
                p.join()
            ordered = [results[k] for k in range(workers)]
            for res in ordered:
                if res.error is not None:
                    raise res.error
            if write_lines is not None:
                for res, path in zip(ordered, paths, strict=True):
                    assert path is not None
                    with open(path, encoding="utf-8") as fh:
                        if res.worker:  # its VM's start-up lines: worker 0 has them already
                            for _ in range(res.startup_lines):
                                fh.readline()
                        while chunk := fh.read(1 << 20):  # whole lines or not, in order
                            write_lines(chunk)
    finally:
        if manager is not None:
            manager.shutdown()
    pacer = _pacer(options)
    if pacer is not None:
        for res in ordered:
            pacer.merge(res.pacing)
    return merge(ordered)


# The host functions that reach the shared data and queues (proxy-wasm's shared_data/shared_queue).
SHARED_STATE_FUNCTIONS = frozenset({
    "proxy_get_shared_data", "proxy_set_shared_data", "proxy_register_shared_queue",
    "proxy_resolve_shared_queue", "proxy_enqueue_shared_queue", "proxy_dequeue_shared_queue",
})


def shares_state(plugin: Plugin) -> bool:
    """Whether the plugin imports a shared data or queue function: without one, nothing a worker's
    VM does can be seen by another, and the workers need no server between them."""
    return any(imp.module == "env" and imp.name in SHARED_STATE_FUNCTIONS
               for imp in plugin.info.imports)


def _pacer(options: ReplayOptions) -> Any:
    from .pacing import Pacer

    pace = options.pace
    return pace if isinstance(pace, Pacer) else None


def _worker(k: int, n: int, plugin: Plugin, trace: Any, options: ReplayOptions, server: Any,
            path: str | None, streaming: bool, out: Any) -> None:
    res = _WorkerResult(k)
    try:
        lines = [0]
        fh = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115
        sink = None
        if fh is not None:
            from .eventline import event_line

            def sink(ev: Any) -> None:
                lines[0] += 1
                fh.write(event_line(ev) + "\n")

        session = Session(plugin, options, trace, sink,
                          on_stream=(lambda r: None) if streaming else None,
                          shared=RemoteSharedState(server, k) if server is not None else None,
                          shard=(k, n))
        # What every worker's VM start-up did: counted once in the merged report.
        res.startup_logs = dict(session.engine.vm.host.log_counts)
        res.startup_lines = lines[0]
        tally = getattr(session.engine.events, "tally", None)
        if tally is not None:
            res.startup_tally = tally()
        session.feed(packets_of(trace, options.loop))
        res.run = session.close()
        if fh is not None:
            fh.close()
        pacer = _pacer(options)
        if pacer is not None:
            res.pacing = pacer.stats()
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
        res.run = None
        res.error = exc
    out.put(res)


def merge(results: list[_WorkerResult]) -> Run:
    """One Run from the workers' runs, as one replay of the whole trace would report it."""
    runs = [r.run for r in results]
    assert all(r is not None for r in runs)
    base = runs[0]
    assert base is not None
    streams = sorted((s for r in runs for s in r.streams), key=lambda s: s.index)  # type: ignore[union-attr]
    events = [e for e in base.events if e.stream is None]
    for r in runs:
        events += [e for e in r.events if e.stream is not None]  # type: ignore[union-attr]
    events.sort(key=lambda e: e.t_ns)  # stable: the table reads in time order
    logs: Counter[str] = Counter(base.log_counts)
    for res in results[1:]:
        assert res.run is not None
        logs.update(res.run.log_counts)
        logs.subtract(res.startup_logs)
    tally = None
    if base.tally is not None:
        tally = Counter(base.tally)
        for res in results[1:]:
            assert res.run is not None and res.run.tally is not None
            tally.update(res.run.tally)
            tally.subtract(res.startup_tally)
        tally = dict(tally)
    warnings: list[str] = []
    for r in runs:
        for w in r.warnings:  # type: ignore[union-attr]
            if w not in warnings:
                warnings.append(w)
    failures = sorted((f for r in runs for f in r.failures), key=lambda f: f.t_ns)  # type: ignore[union-attr]
    return dataclasses.replace(
        base,
        streams=streams,
        events=events,
        failures=failures,
        metrics=_metrics([r.metrics for r in runs]),  # type: ignore[union-attr]
        log_counts={k: v for k, v in sorted(logs.items()) if v},
        warnings=warnings,
        vm_failure=next((r.vm_failure for r in runs if r.vm_failure is not None), None),  # type: ignore[union-attr]
        packets=sum(r.packets for r in runs),  # type: ignore[union-attr]
        end_ns=max(r.end_ns for r in runs),  # type: ignore[union-attr]
        fuel=sum(r.fuel for r in runs),  # type: ignore[union-attr]
        wall_seconds=max(r.wall_seconds for r in runs),  # type: ignore[union-attr]
        tally=tally,
        input_error=next((r.input_error for r in runs if r.input_error is not None), None),  # type: ignore[union-attr]
    )


def _metrics(all_metrics: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metrics in all_metrics:
        for name, m in metrics.items():
            cur = out.get(name)
            if cur is None:
                out[name] = {k: (list(v) if isinstance(v, list) else v) for k, v in m.items()}
            elif "samples" in m:
                cur.setdefault("samples", []).extend(m["samples"])
            else:
                cur["value"] = cur.get("value", 0) + m.get("value", 0)
    return dict(sorted(out.items()))
