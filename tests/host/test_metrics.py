"""Metrics: define, increment, record, get, as Envoy answers them."""

from __future__ import annotations

from pathlib import Path

from .guest import FILL, OUT, Guest, u32, u64

OK, NOT_FOUND, BAD_ARGUMENT, INVALID = 0, 1, 2, 6
MID = OUT + 0x20
COUNTER, GAUGE, HISTOGRAM = 4 | 0, 8 | 1, 12 | 2  # the type in the low bits of the id


def define(g: Guest, mtype: int, name: str) -> str:
    return (f"(i32.store (i32.const {MID}) (i32.const 0xaaaaaaaa))"
            f"(call $st (call $proxy_define_metric (i32.const {mtype}) {g.s(name)} (i32.const {MID})))"
            f"(call $put (i32.const {MID}) (i32.const 4))")


def inc(mid: int, delta: int) -> str:
    return f"(call $st (call $proxy_increment_metric (i32.const {mid}) (i64.const {delta})))"


def rec(mid: int, value: int) -> str:
    return f"(call $st (call $proxy_record_metric (i32.const {mid}) (i64.const {value})))"


def get(mid: int) -> str:
    return (f"(call $z) (call $st (call $proxy_get_metric (i32.const {mid}) (i32.const {OUT})))"
            f"(call $put (i32.const {OUT}) (i32.const 8))")


def test_define_metric_ids_and_types(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start",
         define(g, 0, "c") + define(g, 1, "g") + define(g, 2, "h") + define(g, 0, "c")
         + define(g, 3, "bad") + define(g, 1, "c"), ret=1)
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, u32(COUNTER), OK, u32(GAUGE), OK, u32(HISTOGRAM), OK, u32(COUNTER),
                      BAD_ARGUMENT, FILL, OK, u32(16 | 1)]


def test_counter_gauge_histogram(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start", define(g, 0, "c") + define(g, 1, "g") + define(g, 2, "h"), ret=1)
    g.on("proxy_on_request_headers",
         inc(COUNTER, 5) + inc(COUNTER, -1) + inc(COUNTER, 0) + rec(COUNTER, 10) + get(COUNTER)
         + inc(GAUGE, 7) + inc(GAUGE, -2) + get(GAUGE) + rec(GAUGE, 42) + get(GAUGE)
         + inc(HISTOGRAM, 1) + rec(HISTOGRAM, 3) + rec(HISTOGRAM, 9) + get(HISTOGRAM)
         + inc(99, 1) + rec(99, 1) + get(99)
         + f"(call $st (call $proxy_get_metric (i32.const {COUNTER}) (i32.const 0xfffffffc)))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape[6:] == [
        OK, BAD_ARGUMENT, BAD_ARGUMENT, OK, OK, u64(15),  # Envoy: record adds to a counter
        OK, OK, OK, u64(5), OK, OK, u64(42),
        BAD_ARGUMENT, OK, OK, BAD_ARGUMENT, FILL * 2,  # a histogram has no value to read
        NOT_FOUND, NOT_FOUND, NOT_FOUND, FILL * 2,
        INVALID,
    ]
    assert r.run.metrics == {"c": {"type": "counter", "value": 15},
                             "g": {"type": "gauge", "value": 42},
                             "h": {"type": "histogram", "samples": [3, 9]}}
