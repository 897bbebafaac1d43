"""pwcli's benchmark: one command, every available runtime.

    python benchmarks/run.py                 # everything (the 1,000,000-packet case takes minutes)
    python benchmarks/run.py --quick         # smaller figures, no 1,000,000-packet case
    python benchmarks/run.py --big-packets 200000

Prints, per runtime: streams per second replaying a synthetic trace of many HTTP streams through
example/myproject.wasm (events counted and dropped, as --format jsonl does with a cheap sink; and
with
the JSON Lines text actually produced); microseconds per host call by kind, through all of pwcli's
layers; the runtime's raw floor measured in the same run by a minimal binding of this benchmark's
own (a no-op import and a getter-style import), and the ratio pwcli / floor. Then the start-up wall
time of ``pwcli replay traces/http_4pkts.json --wasm example/myproject.wasm`` with a cold and a warm
module cache, and the peak RSS of the 1,000,000-packet replay (--format jsonl).

In-process figures are CPU time of the measuring thread (time.thread_time), best of a few runs, so
other processes on the machine disturb them less; start-up and the large case are wall time.
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

from benchmarks import hostcalls  # noqa: E402
from benchmarks.synth import packets, write_jsonl  # noqa: E402
from pwcli import runtimes  # noqa: E402
from pwcli.plugin import load_plugin  # noqa: E402
from pwcli.engine import ReplayOptions, replay  # noqa: E402
from pwcli.report import event_line  # noqa: E402
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


def paired(runtime: str, rounds: int, n: int) -> tuple[dict[str, float], dict[str, float] | None,
                                                        str]:
    """pwcli's host calls and the floor, measured alternately; the best of each."""
    best_calls: dict[str, float] = {}
    best_floor: dict[str, float] | None = None
    why = ""
    for _ in range(rounds):
        for k, v in hostcalls.measure(runtime, n=n, repeat=3).items():
            best_calls[k] = min(best_calls.get(k, float("inf")), v)
        f, why = floors(runtime)
        if f is not None:
            best_floor = {k: min((best_floor or {}).get(k, float("inf")), v) for k, v in f.items()}
    return best_calls, best_floor, why


def startup(runs: int) -> dict[str, float]:
    """Wall time of the 4-packet replay in a new process, module cache cold then warm.

    Bytecode is cached as an installed package has it (PYTHONDONTWRITEBYTECODE removed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller runs, no large-trace case")
    ap.add_argument("--streams", type=int, default=None, help="streams in the throughput trace")
    ap.add_argument("--big-packets", type=int, default=1_000_000,
                    help="packets of the large-trace case (0 to skip)")
    ap.add_argument("--json", action="store_true", help="also print every figure as JSON")
    args = ap.parse_args()
    streams = args.streams or (1000 if args.quick else 5000)
    big = 0 if args.quick else args.big_packets
    figures: dict[str, object] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                  f"Python {platform.python_version()}"}
    print(f"pwcli benchmark on {figures['machine']}")
    for name in runtimes.BACKENDS:
        info = runtimes.describe(name)
        if not info.available:
            print(f"\n== {name}: not available ({info.detail})")
            continue
        print(f"\n== {name} {info.version}")
        sps = streams_per_second(name, streams, 2 if args.quick else 3)
        for label, v in sps.items():
            print(f"  streams/s, myproject.wasm, {streams} streams ({label}): {v:,.0f}")
        calls, floor, why = paired(name, 1 if args.quick else 3, 5_000 if args.quick else 20_000)
        print("  us per host call (pwcli, all layers):")
        for k, v in calls.items():
            print(f"    {k:38s} {v:6.2f}")
        if floor is None:
            print(f"  floor: skipped: {why}")
        else:
            print(f"  floor (own minimal binding): guest call {floor['guest_call']:.2f} us, "
                  f"no-op import {floor['noop_import']:.2f} us, "
                  f"getter import {floor['getter_import']:.2f} us")
            g = calls["proxy_get_header_map_value"] / floor["getter_import"]
            lg = calls["proxy_log"] / floor["noop_import"]
            print(f"  ratio pwcli/floor: proxy_get_header_map_value / getter = {g:.2f}x "
                  f"(goal <= 2x); proxy_log / no-op import = {lg:.2f}x")
        figures[name] = {"streams_per_s": sps, "host_calls_us": calls, "floor_us": floor}
    print("\n== start-up (subprocess, wall): pwcli replay traces/http_4pkts.json "
          "--wasm example/myproject.wasm")
    st = startup(3 if args.quick else 7)
    print(f"  cold module cache: {st['cold']:.3f} s wall ({st['cold_cpu']:.3f} s CPU); "
          f"warm: {st['warm']:.3f} s wall median, {st['warm_best']:.3f} s best, "
          f"{st['warm_cpu']:.3f} s CPU (goal < 0.4 s); import pwcli.cli: {st['import_cli']:.3f} s")
    figures["startup_s"] = st
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
