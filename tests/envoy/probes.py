"""Probe plugins for the differential tests: WAT guests that log what each host call answered, so
Envoy's log and pwcli's can be compared line by line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..host.guest import OUT, Guest

SCRATCH = 0x300  # where $report builds its line: OUT + 0x200


def probe() -> Guest:
    """A Guest with ``$report(tag_ptr, tag_len, status)``: logs "<tag> <status>" at info, and
    ``$report_bytes(tag_ptr, tag_len)``: logs "<tag> <status> <bytes at *OUT, size *(OUT+4)>"."""
    g = Guest()
    g.func(f"""
(func $copy (param $dst i32) (param $src i32) (param $n i32)
  (memory.copy (local.get $dst) (local.get $src) (local.get $n)))
(func $digits (param $at i32) (param $v i32) (result i32)
  ;; writes $v in decimal at $at, returns the length (v < 1000)
  (if (i32.ge_u (local.get $v) (i32.const 100)) (then
    (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.div_u (local.get $v) (i32.const 100))))
    (i32.store8 (i32.add (local.get $at) (i32.const 1))
      (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $v) (i32.const 10)) (i32.const 10))))
    (i32.store8 (i32.add (local.get $at) (i32.const 2))
      (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
    (return (i32.const 3))))
  (if (i32.ge_u (local.get $v) (i32.const 10)) (then
    (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.div_u (local.get $v) (i32.const 10))))
    (i32.store8 (i32.add (local.get $at) (i32.const 1))
      (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
    (return (i32.const 2))))
  (i32.store8 (local.get $at) (i32.add (i32.const 48) (local.get $v)))
  (i32.const 1))
(func $line (param $tag i32) (param $n i32) (param $st i32) (result i32)
  (local $len i32)
  (call $copy (i32.const {SCRATCH}) (local.get $tag) (local.get $n))
  (i32.store8 (i32.add (i32.const {SCRATCH}) (local.get $n)) (i32.const 32))
  (local.set $len (i32.add (i32.add (local.get $n) (i32.const 1))
    (call $digits (i32.add (i32.add (i32.const {SCRATCH}) (local.get $n)) (i32.const 1))
                  (local.get $st))))
  (local.get $len))
(func $report (param $tag i32) (param $n i32) (param $st i32)
  (drop (call $proxy_log (i32.const 2) (i32.const {SCRATCH})
    (call $line (local.get $tag) (local.get $n) (local.get $st)))))
(func $report_bytes (param $tag i32) (param $n i32) (param $st i32)
  (local $len i32) (local $size i32)
  (local.set $len (call $line (local.get $tag) (local.get $n) (local.get $st)))
  (if (i32.eqz (local.get $st)) (then
    (local.set $size (i32.load (i32.const {OUT + 4})))
    (if (i32.gt_u (local.get $size) (i32.const 200)) (then (local.set $size (i32.const 200))))
    (i32.store8 (i32.add (i32.const {SCRATCH}) (local.get $len)) (i32.const 32))
    (call $copy (i32.add (i32.add (i32.const {SCRATCH}) (local.get $len)) (i32.const 1))
                (i32.load (i32.const {OUT})) (local.get $size))
    (local.set $len (i32.add (i32.add (local.get $len) (i32.const 1)) (local.get $size)))))
  (drop (call $proxy_log (i32.const 2) (i32.const {SCRATCH}) (local.get $len))))
""")
    return g


def report(g: Guest, tag: str, call: str) -> str:
    """Log "<tag> <status>" of ``call``."""
    return f"(call $report {g.s(tag)} {call})"


def report_bytes(g: Guest, tag: str, call: str) -> str:
    """Log "<tag> <status> <bytes>" of a call that returns bytes through (*OUT, *OUT+4)."""
    return (f"(i32.store (i32.const {OUT}) (i32.const 0)) (i32.store (i32.const {OUT + 4})"
            f" (i32.const 0)) (call $report_bytes {g.s(tag)} {call})")


def log(g: Guest, text: str) -> str:
    return f"(drop (call $proxy_log (i32.const 2) {g.s(text)}))"


def write(g: Guest, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(g.wasm())
    return path


def exchange(path: str = "/", body: str | None = None, response_body: str = "ok",
             port: int = 40000) -> list[dict[str, Any]]:
    """One request and its response on a connection of its own."""
    req: dict[str, Any] = {"sip": "10.0.0.2", "sp": port, "dip": "10.0.0.1", "dp": 80,
                           "method": "POST" if body else "GET", "uri_path": path,
                           "headers": {"x-probe": "1"}, "forward_direction": True}
    if body:
        req["body"] = body
    resp = {"sip": "10.0.0.1", "sp": 80, "dip": "10.0.0.2", "dp": port, "status": 200,
            "headers": {"x-up": "1"}, "body": response_body, "forward_direction": False,
            "delta_ms": 2}
    return [req, resp]
