"""The run's results: ``Run`` (everything a replay observed, with accessors for tests and tools),
the event sinks (a list keeps every event; ``EventTally`` only counts them for streamed reports),
and ``build_run``, which assembles a Run from the engine's state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import Event, Failure, StreamResult
from ..textutil import text
from .options import effective_properties

if TYPE_CHECKING:
    from .engine import Engine


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
    input_error: Any = None  # a TraceError met mid-way (streamed trace): the replay stopped there
    # shared data at the end (key -> value, cas), as text; not in the JSON report (the HTML
    # report and pwcli ui show it); empty with --workers, whose shared data lives elsewhere
    shared_data: dict[str, tuple[str, int]] = field(default_factory=dict)

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

    def metric_values(self) -> dict[str, Any]:
        """Each metric's value (counters, gauges) or samples (histograms), by name."""
        return {k: v.get("samples", v.get("value")) for k, v in self.metrics.items()}

    def all_failures(self) -> list[Failure]:
        """Every trap, and the VM's own failure (a refusal) when it is not one of them."""
        out = list(self.failures)
        if self.vm_failure is not None and self.vm_failure not in out:
            out.append(self.vm_failure)
        return out


class EventTally:
    """Streaming mode's stand-in for the event list: counts what the summary needs, keeps none."""

    def __init__(self) -> None:
        self.host_calls = 0
        self.callbacks = 0
        self.in_streams = 0  # host calls and logs of streams (the "did nothing" warning)
        self.streams: dict[str, int] = dict.fromkeys(
            ("streams", "completed", "failed", "not_run", "stalled", "incomplete",
             "local_replies"), 0)

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


def build_run(e: Engine, packets: int, wall: float) -> Run:
    vm, o, p = e.vm, e.options, e.plugin
    host = vm.host
    metrics: dict[str, Any] = {}
    for m in sorted(host.metrics.values(), key=lambda m: m.name):
        entry: dict[str, Any] = {"type": m.type.name.lower()}
        if m.samples or m.type.name == "HISTOGRAM":
            entry["samples"] = list(m.samples)
        else:
            entry["value"] = m.value
        metrics[m.name] = entry
    tally = e.events.tally() if isinstance(e.events, EventTally) else None
    return Run(
        plugin={"file": p.name, "sha256": p.sha256, "abi": p.abi, "size": len(p.wasm)},
        inputs={
            "root_id": e.inputs.root_id,
            "vm_id": o.vm_id,
            "configuration": text(e.inputs.configuration),
            "vm_configuration": text(e.inputs.vm_configuration),
            "environment": dict(sorted(e.inputs.environment.items())),
            "log_level": e.inputs.log_level,
            "seed": o.seed,
            "start_time_ns": o.start_epoch_ns,
            "failure_policy": o.failure_policy,
            "lenient": bool(p.lenient_notes),
            "plugin_name": o.plugin_name or e.inputs.root_id,
            "properties": effective_properties(e.trace.properties, o.properties),
            "drain_ms": int(o.drain_ms) if o.drain_ms == int(o.drain_ms) else o.drain_ms,
            "fail_fast": o.fail_fast,
            "budget": o.limits.fuel,
            "max_memory": o.limits.max_memory,
            "envoy_headers": o.envoy_headers,
        },
        runtime=o.runtime,
        runtime_version=vm.runtime.version(),
        streams=list(e.streams) if tally is None else e.streams,
        events=e.events if tally is None else [],
        failures=vm.failures,
        metrics=metrics,
        log_counts=dict(sorted(host.log_counts.items())),
        warnings=e.warnings,
        notes=e.notes,
        vm_failure=vm.failure,
        refused_configuration=vm.refused,
        packets=packets,
        end_ns=e.clock.now_ns,
        fuel=vm.instance.fuel_consumed() if vm.instance is not None else 0,
        wall_seconds=wall,
        tally=tally,
        shared_data={text(k): (text(v), cas) for k, (v, cas) in
                     sorted(getattr(e.shared, "data", {}).items())}
        if isinstance(getattr(e.shared, "data", None), dict) else {},
    )
