"""Converting a large capture: speed (MB/s) and peak memory of ``pwcli convert``.

    python benchmarks/capture.py              # a 1 GB capture
    python benchmarks/capture.py --quick      # 100 MB
    python benchmarks/capture.py --size-mb 300 --json

The capture is made first (Ethernet, IPv4, written with dpkt): many connections over a pool of
clients, each a handshake, keep-alive HTTP/1.1 exchanges (a GET, and a POST with a 2 KB body;
responses of 16 KB in 1448-byte segments, every fourth one chunked) and both FINs, the
connections interleaved four at a time as a capture of a busy server shows them. Then
``pwcli convert CAPTURE -o trace.jsonl`` runs in a child process: the figures are its wall time
and its peak RSS (ru_maxrss), with the trace's size and packet count.

Measured on the 2-core machine: a 1,025 MB capture (2,880 connections, 57,600 streams) converted
in 44.8 s, 22.8 MB/s, peak RSS 37.5 MB, into a 1,082 MB trace of 777,600 packets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt

ROOT = Path(__file__).resolve().parent.parent
MSS = 1448
BODY = bytes(range(97, 123)) * 630  # 16,380 bytes of text
POST_BODY = b"x" * 2048
FIN, ACK, SYN = dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, dpkt.tcp.TH_ACK, dpkt.tcp.TH_SYN
PARALLEL = 4  # connections open at once, their segments interleaved
EXCHANGES = 20  # requests per connection


def frame(client: tuple[bytes, int], server: tuple[bytes, int], from_client: bool, seq: int,
          ack: int, flags: int, data: bytes = b"") -> bytes:
    (sip, sp), (dip, dp) = (client, server) if from_client else (server, client)
    tcp = dpkt.tcp.TCP(sport=sp, dport=dp, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                       flags=flags, data=data)
    ip = dpkt.ip.IP(src=sip, dst=dip, p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def responses(n: int) -> bytes:
    if n % 4 == 3:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(BODY[i:i + 4096]), BODY[i:i + 4096])
                          for i in range(0, len(BODY), 4096))
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked" \
               b"\r\n\r\n" + chunks + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
        len(BODY), BODY)


def request(n: int) -> bytes:
    head = (b"Host: shop.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0\r\n"
            b"Accept: text/html,application/json\r\nAccept-Language: en\r\nCookie: s=%d\r\n" % n)
    if n % 2:
        return b"POST /api/cart?item=%d HTTP/1.1\r\n%sContent-Type: application/json\r\n" \
               b"Content-Length: %d\r\n\r\n%s" % (n, head, len(POST_BODY), POST_BODY)
    return b"GET /static/page-%d.html HTTP/1.1\r\n%s\r\n" % (n, head)


def connection(k: int) -> Iterator[bytes]:
    client = (bytes([10, 1, k // 250 % 250, k % 250 + 1]), 20000 + k % 40000)
    server = (bytes([10, 0, 0, 1]), 80)
    cs, ss = 1000, 9000  # next sequence numbers
    yield frame(client, server, True, cs - 1, 0, SYN)
    yield frame(client, server, False, ss - 1, cs, SYN | ACK)
    for n in range(EXCHANGES):
        req, resp = request(n), responses(n)
        for i in range(0, len(req), MSS):
            yield frame(client, server, True, cs, ss, ACK, req[i:i + MSS])
            cs += len(req[i:i + MSS])
        for i in range(0, len(resp), MSS):
            yield frame(client, server, False, ss, cs, ACK, resp[i:i + MSS])
            ss += len(resp[i:i + MSS])
    yield frame(client, server, True, cs, ss, FIN)
    yield frame(client, server, False, ss, cs + 1, FIN)


def make_capture(path: Path, size: int) -> int:
    """Write connections until the file holds ``size`` bytes; return how many."""
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh, snaplen=65535)
        ts, k = 1_700_000_000.0, 0
        while fh.tell() < size:
            gens = [connection(k + i) for i in range(PARALLEL)]
            k += PARALLEL
            while gens:
                for g in list(gens):
                    buf = next(g, None)
                    if buf is None:
                        gens.remove(g)
                        continue
                    ts += 0.00002
                    w.writepkt(buf, ts=ts)
    return k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 100 MB capture")
    ap.add_argument("--size-mb", type=int, help="the capture's size (default 1024)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    size_mb = args.size_mb or (100 if args.quick else 1024)
    with tempfile.TemporaryDirectory(prefix="pwcli-bench-") as tmp:
        capture, trace = Path(tmp) / "big.pcap", Path(tmp) / "big.jsonl"
        t0 = time.perf_counter()
        conns = make_capture(capture, size_mb << 20)
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pwcli", "convert", str(capture), "-o",
                               str(trace)], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"pwcli convert failed: {proc.stderr}")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with open(trace, "rb") as fh:
            packets = sum(1 for _ in fh)
        mb = capture.stat().st_size / (1 << 20)
        figures = {"capture_mb": round(mb, 1), "connections": conns,
                   "streams": conns * EXCHANGES, "packets": packets,
                   "trace_mb": round(os.path.getsize(trace) / (1 << 20), 1),
                   "seconds": round(wall, 2), "mb_per_s": round(mb / wall, 1),
                   "peak_rss_mb": round(rss_mb, 1), "made_in_s": round(made, 1)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"capture: {figures['capture_mb']} MB, {conns:,} connections, "
          f"{figures['streams']:,} streams (made in {figures['made_in_s']} s)")
    print(f"pwcli convert: {figures['seconds']} s, {figures['mb_per_s']} MB/s, "
          f"peak RSS {figures['peak_rss_mb']} MB; trace {figures['trace_mb']} MB, "
          f"{packets:,} packets")


if __name__ == "__main__":
    main()
