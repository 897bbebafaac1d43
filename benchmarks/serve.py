"""pwcli serve under load: SendTraffic throughput and latency with 8 concurrent clients, and the
server's memory after 100,000 streams.

    python benchmarks/serve.py            # 100,000 streams
    python benchmarks/serve.py --quick    # 10,000

The server runs in its own process (pwcli serve --port 0) on loopback; clients are threads of this
process, each with its own channel, sending calls of 50 streams (100 packets) to one of 4 VMs.
Memory is the server process's peak RSS (ru_maxrss of the child, read from /proc at the end).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pwcli.serve import proxy_wasm_cli_pb2 as pb  # noqa: E402
from pwcli.serve import proxy_wasm_cli_pb2_grpc as pb_grpc  # noqa: E402
from pwcli.serve.packets import from_trace_packet  # noqa: E402

CLIENTS, VMS, STREAMS_PER_CALL = 8, 4, 50


def call_packets(client: int, call: int) -> list:
    out = []
    for i in range(STREAMS_PER_CALL):
        n = call * STREAMS_PER_CALL + i
        ip = f"10.{client}.{n // 250 % 250}.{n % 250 + 1}"
        port = 1024 + n // 62500
        out.append(from_trace_packet({"sip": ip, "sp": port, "dip": "10.0.0.1", "dp": 80,
                                      "method": "GET", "uri_path": "/", "forward_direction": True,
                                      "headers": {"user-agent": "bench"}}))
        out.append(from_trace_packet({"sip": "10.0.0.1", "sp": 80, "dip": ip, "dp": port,
                                      "forward_direction": False, "body": "ok"}))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    streams = 10_000 if ap.parse_args().quick else 100_000
    proc = subprocess.Popen([sys.executable, "-m", "pwcli", "serve", "--port", "0",
                             "--plugins-dir", str(ROOT / "example")],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # "pwcli serve: listening on 127.0.0.1:PORT ..."
        address = line.split("listening on ")[1].split()[0]
        stub = pb_grpc.WasmHostStub(grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 1 << 30)]))
        for v in range(VMS):
            assert stub.LaunchInstance(pb.WasmLaunchInstanceRequest(
                name=f"v{v}", wasm_file="myproject.wasm")).success
        calls = streams // (CLIENTS * STREAMS_PER_CALL)
        prepared = {c: [call_packets(c, k) for k in range(calls)] for c in range(CLIENTS)}
        latencies: list[float] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            s = pb_grpc.WasmHostStub(grpc.insecure_channel(address))
            for k in range(calls):
                t = time.perf_counter()
                reply = s.SendTraffic(pb.WasmSendTrafficRequest(vm_name=f"v{c % VMS}",
                                                                packets=prepared[c][k]))
                assert reply.success, reply.error
                with lock:
                    latencies.append(time.perf_counter() - t)

        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        total = calls * CLIENTS * STREAMS_PER_CALL
        report = json.loads(stub.GetReport(pb.WasmReportRequest(vm_name="v0")).report_json)
        print(f"pwcli serve, {CLIENTS} clients, {VMS} VMs, {STREAMS_PER_CALL} streams per call")
        print(f"  {total} streams ({2 * total} packets) in {wall:.1f} s: "
              f"{2 * total / wall:,.0f} packets/s, {total / wall:,.0f} streams/s")
        latencies.sort()
        print(f"  SendTraffic latency: median {statistics.median(latencies) * 1000:.1f} ms, "
              f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.1f} ms "
              f"({2 * STREAMS_PER_CALL} packets a call)")
        print(f"  server peak RSS: {rss_mb(proc.pid):.0f} MB; VM v0's report keeps "
              f"{len(report['streams'])} of {report['summary']['streams']} streams "
              f"({report['warnings'][-1] if report['warnings'] else 'all kept'})")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
