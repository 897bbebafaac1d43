"""Microseconds per host call through all of pwcli's layers, one host function at a time.

Each guest loops N times over one host call inside ``proxy_on_request_headers`` (or
``proxy_on_request_body`` for buffers) and is replayed by pwcli's engine like any plugin: the
figure includes the trampoline, the Imports adapter, the Host method and the recorded event.
Per call = (replay with N calls - replay with 0 calls) / N, best of a few runs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import wasmtime

from pwcli.plugin import load_plugin
from pwcli.engine import ReplayOptions, replay
from pwcli.trace import parse_trace

DATA = r"""
  (data (i32.const 16) "user-agent")
  (data (i32.const 64) "hello")
  (data (i32.const 80) "x-add")
  (data (i32.const 96) "yes")
  (data (i32.const 112) "source\00address")
"""
# kind -> (import declaration, call expression, callback it runs in)
KINDS: dict[str, tuple[str, str, str]] = {
    "proxy_log": ("(param i32 i32 i32) (result i32)",
                  "(call $f (i32.const 2) (i32.const 64) (i32.const 5))", "headers"),
    "proxy_get_header_map_value": ("(param i32 i32 i32 i32 i32) (result i32)",
                                   "(call $f (i32.const 0) (i32.const 16) (i32.const 10)"
                                   " (i32.const 32) (i32.const 36))", "headers"),
    "proxy_add_header_map_value": ("(param i32 i32 i32 i32 i32) (result i32)",
                                   "(call $f (i32.const 0) (i32.const 80) (i32.const 5)"
                                   " (i32.const 96) (i32.const 3))", "headers"),
    "proxy_get_header_map_pairs": ("(param i32 i32 i32) (result i32)",
                                   "(call $f (i32.const 0) (i32.const 32) (i32.const 36))",
                                   "headers"),
    "proxy_get_property": ("(param i32 i32 i32 i32) (result i32)",
                           "(call $f (i32.const 112) (i32.const 14) (i32.const 32) (i32.const 36))",
                           "headers"),
    "proxy_get_buffer_bytes": ("(param i32 i32 i32 i32 i32) (result i32)",
                               "(call $f (i32.const 0) (i32.const 0) (i32.const 100)"
                               " (i32.const 32) (i32.const 36))", "body"),
    "proxy_get_current_time_nanoseconds": ("(param i32) (result i32)",
                                           "(call $f (i32.const 40))", "headers"),
}
PACKET = {"sip": "10.0.0.2", "sp": 5000, "dip": "10.0.0.1", "dp": 80, "method": "GET",
          "uri_path": "/", "headers": {"user-agent": "bench/1.0", "accept": "*/*"},
          "body": "x" * 100, "forward_direction": True}


def guest(kind: str, n: int) -> bytes:
    sig, call, where = KINDS[kind]
    loop = (f"(local $i i32) (local.set $i (i32.const {n}))"
            f" (block $done (loop $l local.get $i i32.eqz br_if $done {call} drop"
            " local.get $i i32.const 1 i32.sub local.set $i br $l))")
    body_fn = "proxy_on_request_body" if where == "body" else "proxy_on_request_headers"
    other = "proxy_on_request_headers" if where == "body" else "proxy_on_request_body"
    return wasmtime.wat2wasm(f"""(module
      (import "env" "{kind}" (func $f {sig}))
      (memory (export "memory") 2)
      {DATA}
      (func (export "malloc") (param i32) (result i32) i32.const 0x8000)
      (func (export "proxy_on_context_create") (param i32 i32))
      (func (export "{body_fn}") (param i32 i32 i32) (result i32) {loop} i32.const 0)
      (func (export "{other}") (param i32 i32 i32) (result i32) i32.const 0)
      (func (export "proxy_abi_version_0_2_1")))""")


def _replay_seconds(path: Path, runtime: str, cache_dir: str) -> float:
    trace = parse_trace([PACKET], source="bench")
    plugin = load_plugin(path)
    options = ReplayOptions(runtime=runtime, cache_dir=cache_dir, log_level="trace")
    t = time.thread_time()
    replay(plugin, trace, options)
    return time.thread_time() - t


def measure(runtime: str = "wasmtime", n: int = 20_000, repeat: int = 5) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            times = {}
            for count in (0, n):
                path = Path(tmp) / f"{kind}_{count}.wasm"
                path.write_bytes(guest(kind, count))
                times[count] = min(_replay_seconds(path, runtime, tmp) for _ in range(repeat))
            out[kind] = (times[n] - times[0]) / n * 1e6
    return out


if __name__ == "__main__":
    for k, v in measure().items():
        print(f"{k:40s} {v:6.2f} us")
