"""``compare_with_envoy``: run a trace through real Envoy and through pwcli, and compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..engine import ReplayOptions, Run, replay
from ..engine.options import Inputs
from ..plugin import Plugin
from ..textutil import text
from ..trace import Trace
from . import config
from .compare import (
    Comparison,
    compare_callouts,
    compare_metrics,
    compare_stream,
    compare_vm_logs,
)
from .driver import Driver, wasm_logs
from .process import EnvoyProcess, EnvoyRefused, envoy_binary, envoy_version
from .upstream import MockUpstream, ScriptedUpstream, TcpUpstream, cluster_answers

METRIC_PREFIX = "wasmcustom."  # Envoy's stat prefix for metrics a plugin defines


def compare_with_envoy(plugin: Plugin, trace: Trace, options: ReplayOptions | None = None,
                       run: Run | None = None) -> Comparison:
    """Replay ``trace`` in pwcli (unless ``run`` is given) and through Envoy; the differences."""
    options = options or ReplayOptions()
    if getattr(trace, "streaming", False):
        raise ValueError("--against envoy needs a trace read whole, not a streamed one")
    binary = envoy_binary()  # EnvoyUnavailable (exit 2) before anything runs
    if run is None:
        run = replay(plugin, trace, options, check=False)
    inputs = Inputs.resolve(options, trace)
    comparison = Comparison(envoy_version(binary), streams=len(run.streams))
    upstream = ScriptedUpstream()
    clusters: dict[str, MockUpstream] = {}
    for name, answers in (trace.upstreams or {}).items():
        clusters[name] = MockUpstream(cluster_answers(
            list(answers) if isinstance(answers, list) else [answers]))
    setup = config.PluginSetup(
        wasm=Path(plugin.path).resolve(), root_id=inputs.root_id, vm_id=options.vm_id,
        plugin_name=options.plugin_name or inputs.root_id,
        configuration=text(inputs.configuration), vm_configuration=text(inputs.vm_configuration),
        environment=inputs.environment)
    tcp_upstream = TcpUpstream() if any(p.is_tcp for p in trace.packets) else None
    cfg = config.build(setup, upstream.port, {n: m.port for n, m in clusters.items()},
                       tcp_upstream.port if tcp_upstream is not None else None)
    envoy = EnvoyProcess(cfg, log_level=inputs.log_level)
    try:
        try:
            envoy.start()
        except EnvoyRefused as refused:
            comparison.refused = refused.reason
            return comparison
        startup = wasm_logs(envoy.log_lines())
        driver = Driver(envoy, upstream, tcp_upstream)
        try:
            streams = driver.run(trace)
        finally:
            driver.close()
        stats = _plugin_stats(envoy.admin("/stats?format=json"))
        received = {name: list(m.received) for name, m in clusters.items()}
    finally:
        envoy.stop()
        envoy.cleanup()
        upstream.close()
        if tcp_upstream is not None:
            tcp_upstream.close()
        for m in clusters.values():
            m.close()
    windows = _log_windows(run)
    comparison.differences += compare_vm_logs(windows.get(None, []), startup)
    by_opener = {s.first_packet: s for s in run.streams}
    for e in streams:
        s = by_opener.get(e.first_packet)
        if s is not None:
            comparison.differences += compare_stream(s, windows.get(s.index, []), e)
    comparison.differences += compare_metrics(run, stats)
    comparison.differences += compare_callouts(run, received)
    return comparison


def _log_windows(run: Run) -> dict[int | None, list[tuple[str, str]]]:
    """The log lines of each stream's lifetime, as the driver sees Envoy's: from the stream's
    first event to its last, with what other contexts logged meanwhile (a tick, a callout's
    answer). Key None: the VM's start-up, before the first stream."""
    last: dict[int, int] = {}
    for i, e in enumerate(run.events):
        if e.stream is not None:
            last[e.stream] = i
    out: dict[int | None, list[tuple[str, str]]] = {None: []}
    current: int | None = None
    for i, e in enumerate(run.events):
        if e.stream is not None and e.stream != current and (current is None or
                                                            i > last.get(current, -1)):
            current = e.stream
        if e.kind == "log":
            out.setdefault(current, []).append((e.name, e.args["message"]))
    return out


def _plugin_stats(raw: str) -> dict[str, Any]:
    out = {}
    for s in json.loads(raw).get("stats", []):
        name = s.get("name", "")
        if name.startswith(METRIC_PREFIX) and "value" in s:
            out[name[len(METRIC_PREFIX):]] = s["value"]
    return out
