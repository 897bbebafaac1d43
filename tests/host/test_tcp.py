"""TCP (L4) streams: connection callbacks, buffers 2 and 3, pause and resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .guest import FILL, PP, Guest, i64

OK, NOT_FOUND, BAD_ARGUMENT = 0, 1, 2
UNTOUCHED = FILL * 2
MS = 1_000_000
DOWN = {"sip": "10.0.0.2", "sp": 40000, "dip": "10.0.0.9", "dp": 5432, "forward_direction": True}
UP = {"sip": "10.0.0.9", "sp": 5432, "dip": "10.0.0.2", "dp": 40000, "forward_direction": False}


def tcp(*items: tuple[dict[str, Any], dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**side, **extra} for side, extra in items]


def get(b: int) -> str:
    return (f"(call $z) (call $r2 (call $proxy_get_buffer_bytes (i32.const {b}) (i32.const 0)"
            f" (i32.const 0xffffffff) {PP}))")


def args(n: int) -> str:
    return "".join(f"(call $st (local.get $p{i}))" for i in range(n))


def test_connection_callbacks_and_buffers(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_new_connection", args(1))
    g.on("proxy_on_downstream_data", args(3) + get(2) + get(3) + get(0)
         + f"(call $st (call $proxy_set_buffer_bytes (i32.const 2) (i32.const 0) (i32.const 0) {g.s('>')}))")
    g.on("proxy_on_upstream_data", args(3) + get(3) + get(2)
         + f"(call $st (call $proxy_set_buffer_bytes (i32.const 3) (i32.const 99) (i32.const 0) {g.s('!')}))"
         + f"(call $z) (call $r2 (call $proxy_get_header_map_pairs (i32.const 0) {PP}))")
    g.on("proxy_on_downstream_connection_close", args(2))
    g.on("proxy_on_log", "(call $st (i32.const 100))")
    packets = tcp((DOWN, {"data": "hello"}), (UP, {"data": "world", "delta_ms": 1}),
                  (DOWN, {"close": "fin", "delta_ms": 1}))
    r = g.run(tmp_path, packets, runtime=runtime)
    assert r.tape == [
        2,
        # the other side's data and the HTTP body read as empty here (as Envoy answers)
        2, 5, 0, OK, b"hello", OK, b"", OK, b"", OK,
        2, 5, 0, OK, b"world", OK, b"", OK, OK, b"",  # no header map: no pairs
        2, 0, 1, OK, b"", OK, b"", OK, b"", OK,  # the FIN: end of stream
        2, 0, 1, OK, b"", OK, b"", OK, OK, b"",  # the server closes in turn (tcp_proxy)
        2, 1,  # then Envoy closes the client's connection (LOCAL)
        100,
    ]
    s = r.run.streams[0]
    assert s.kind == "tcp"
    # each upstream_data call appends "!": the server's closing call too
    assert (s.downstream, s.upstream) == (b">hello>", b"world!!")
    assert [n for n, _ in r.callbacks()][-2:] == ["proxy_on_downstream_connection_close",
                                                   "proxy_on_log"]


def test_paused_data_accumulates_and_resumes(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_downstream_data",
         "(call $st (local.get $p1))"
         "(drop (call $proxy_set_tick_period_milliseconds (i32.const 5)))", ret=1)
    g.on("proxy_on_tick",
         "(drop (call $proxy_set_tick_period_milliseconds (i32.const 0)))"
         "(call $st (call $proxy_set_effective_context (i32.const 2)))"
         "(call $st (call $proxy_continue_stream (i32.const 2)))")
    packets = tcp((DOWN, {"data": "ab"}), (DOWN, {"data": "cd", "delta_ms": 1}),
                  (UP, {"data": "x", "delta_ms": 10}))
    r = g.run(tmp_path, packets, runtime=runtime)
    assert r.tape == [2, 4, OK, OK]
    assert r.run.streams[0].actions[:3] == [
        ("proxy_on_new_connection", "continue"), ("proxy_on_downstream_data", "stop_iteration"),
        ("proxy_on_downstream_data", "stop_iteration")]
    assert r.run.streams[0].downstream == b"abcd"


def test_properties_of_a_connection(tmp_path: Path, runtime: str) -> None:
    g = Guest()

    def prop(path: bytes) -> str:
        return f"(call $z) (call $r2 (call $proxy_get_property {g.s(path)} {PP}))"

    g.on("proxy_on_new_connection",
         prop(b"source\0address") + prop(b"destination\0port") + prop(b"connection\0id")
         + prop(b"request\0protocol"))
    r = g.run(tmp_path, tcp((DOWN, {"data": "x"})), runtime=runtime)
    assert r.tape == [OK, b"10.0.0.2:40000", OK, i64(5432), OK, i64(1), NOT_FOUND, UNTOUCHED]
    assert r.run.streams[0].flags == ["incomplete"]
