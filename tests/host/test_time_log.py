"""Logging, time, ticks, effective context, proxy_done and the cpp-host extras."""

from __future__ import annotations

from pathlib import Path

import pytest

from pwcli.errors import PluginLoadError
from pwcli.host.host import EPOCH_2024_NS

from .guest import FILL, OUT, Guest, http, u32, u64

OK, NOT_FOUND, BAD_ARGUMENT, UNIMPLEMENTED = 0, 1, 2, 12
MS = 1_000_000


def now() -> str:
    return (f"(call $z) (call $st (call $proxy_get_current_time_nanoseconds (i32.const {OUT})))"
            f" (call $put (i32.const {OUT}) (i32.const 8))")


def log(g: Guest, level: int, text: str) -> str:
    return f"(call $st (call $proxy_log (i32.const {level}) {g.s(text)}))"


def test_time_is_virtual_and_constant_within_a_packet(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", now() + now())
    g.on("proxy_on_response_headers", now())
    g.on("proxy_on_vm_start", now(), ret=1)
    r = g.run(tmp_path, runtime=runtime)
    t0 = EPOCH_2024_NS
    assert r.tape == [OK, u64(t0), OK, u64(t0), OK, u64(t0), OK, u64(t0 + 5 * MS)]


def test_start_time_option(tmp_path: Path, runtime: str) -> None:
    g = Guest().on("proxy_on_response_headers", now())
    r = g.run(tmp_path, runtime=runtime, start_epoch_ns=123)
    assert r.tape == [OK, u64(123 + 5 * MS)]


def test_log_levels_filtered_but_counted(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers",
         "".join(log(g, lvl, f"level {lvl}") for lvl in range(6)) + log(g, 6, "six")
         + log(g, 0xFFFFFFFF, "huge"))
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK] * 6 + [BAD_ARGUMENT] * 2
    assert r.logs() == [("info", "level 2"), ("warn", "level 3"), ("error", "level 4"),
                        ("critical", "level 5")]
    assert r.run.log_counts == {"trace": 1, "debug": 1, "info": 1, "warn": 1, "error": 1,
                                "critical": 1}
    assert [(e.args, e.result) for e in r.calls("proxy_log")] == [
        ({"level": 6, "message": "six"}, "BAD_ARGUMENT"),
        ({"level": 0xFFFFFFFF, "message": "huge"}, "BAD_ARGUMENT")]


def test_log_level_option_shows_lower_levels(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", log(g, 0, "t") + log(g, 1, "d"))
    r = g.run(tmp_path, runtime=runtime, log_level="trace")
    assert r.logs() == [("trace", "t"), ("debug", "d")]
    r = g.run(tmp_path, runtime=runtime, log_level="error")
    assert r.logs() == [] and r.run.log_counts == {"trace": 1, "debug": 1}


def test_log_bad_pointer(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", "(call $st (call $proxy_log (i32.const 2) (i32.const 0x3fff0) (i32.const 32)))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [6] and r.logs() == []


@pytest.mark.parametrize(("level", "value"), [("info", 2), ("trace", 0), ("critical", 5), ("warn", 3)])
def test_get_log_level(tmp_path: Path, runtime: str, level: str, value: int) -> None:
    g = Guest()
    g.on("proxy_on_vm_start",
         f"(call $z) (call $st (call $proxy_get_log_level (i32.const {OUT}))) (call $put (i32.const {OUT}) (i32.const 4))",
         ret=1)
    r = g.run(tmp_path, runtime=runtime, log_level=level)
    assert r.tape == [OK, u32(value)]


def test_get_log_level_is_021_only(tmp_path: Path) -> None:
    g = Guest("0.2.0")
    g.on("proxy_on_vm_start", f"(call $z) (call $st (call $proxy_get_log_level (i32.const {OUT})))"
         f" (call $put (i32.const {OUT}) (i32.const 4))", ret=1)
    with pytest.raises(PluginLoadError, match="proxy_get_log_level"):
        g.run(tmp_path)
    r = g.run(tmp_path, lenient=True)
    assert r.tape == [UNIMPLEMENTED, FILL]


# -- ticks ---------------------------------------------------------------------------------
def tick_guest(period: int, *, from_stream: bool = False) -> Guest:
    g = Guest()
    setp = f"(call $st (call $proxy_set_tick_period_milliseconds (i32.const {period})))"
    if from_stream:
        g.on("proxy_on_request_headers", setp)
    else:
        g.on("proxy_on_vm_start", setp, ret=1)
    g.on("proxy_on_tick", "(call $st (local.get $p0))" + now())
    g.on("proxy_on_response_headers", now())
    return g


def test_tick_fires_on_the_virtual_clock_before_a_packet_due_then(tmp_path: Path, runtime: str) -> None:
    r = tick_guest(5).run(tmp_path, runtime=runtime)
    t0 = EPOCH_2024_NS
    # The tick due at 5 ms fires before the response packet that arrives at 5 ms.
    assert r.tape == [OK, 1, OK, u64(t0 + 5 * MS), OK, u64(t0 + 5 * MS)]
    names = [n for n, _ in r.callbacks()]
    assert names == ["proxy_on_vm_start", "proxy_on_tick", "proxy_on_response_headers"]
    assert [e.t_ns for e in r.run.events if e.name == "proxy_on_tick"] == [5 * MS]


def test_ticks_every_period_and_during_drain(tmp_path: Path, runtime: str) -> None:
    r = tick_guest(2).run(tmp_path, runtime=runtime, drain_ms=5)
    ticks = [e.t_ns // MS for e in r.run.events if e.name == "proxy_on_tick"]
    assert ticks == [2, 4, 6, 8, 10]
    assert r.run.end_ns == 10 * MS
    r = tick_guest(2).run(tmp_path, runtime=runtime)
    assert [e.t_ns // MS for e in r.run.events if e.name == "proxy_on_tick"] == [2, 4]


def test_tick_period_from_a_stream_applies_to_the_root(tmp_path: Path, runtime: str) -> None:
    r = tick_guest(1, from_stream=True).run(tmp_path, runtime=runtime)
    t0 = EPOCH_2024_NS
    assert r.tape[:5] == [OK, 1, OK, u64(t0 + 1 * MS), 1]
    assert [e.ctx for e in r.run.events if e.name == "proxy_on_tick"] == [1] * 5


def test_period_zero_stops_the_ticks(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start", "(drop (call $proxy_set_tick_period_milliseconds (i32.const 1)))", ret=1)
    g.on("proxy_on_tick", "(call $st (call $proxy_set_tick_period_milliseconds (i32.const 0)))")
    r = g.run(tmp_path, runtime=runtime, drain_ms=10)
    assert r.tape == [OK]


# -- effective context and proxy_done -------------------------------------------------------
def test_set_effective_context(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers",
         "(drop (call $proxy_set_tick_period_milliseconds (i32.const 1)))", ret=1)  # pause
    g.on("proxy_on_tick",
         f"(drop (call $proxy_set_tick_period_milliseconds (i32.const 0)))"
         f"(call $st (call $proxy_set_effective_context (i32.const 99)))"
         f"(call $z) (call $r2 (call $proxy_get_header_map_value (i32.const 0) {g.s('h1')}"
         f" (i32.const {OUT}) (i32.const {OUT + 4})))"
         f"(call $st (call $proxy_set_effective_context (i32.const 2)))"
         f"(call $z) (call $r2 (call $proxy_get_header_map_value (i32.const 0) {g.s('h1')}"
         f" (i32.const {OUT}) (i32.const {OUT + 4})))"
         f"(call $st (call $proxy_add_header_map_value (i32.const 0) {g.s('x-tick')} {g.s('1')}))"
         f"(call $st (call $proxy_continue_stream (i32.const 0)))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [BAD_ARGUMENT, BAD_ARGUMENT, FILL * 2, OK, OK, b"v1", OK, OK]
    s = r.run.streams[0]
    assert s.request.headers[-1] == (b"x-tick", b"1")
    assert [e.ctx for e in r.calls("proxy_add_header_map_value")] == [2]
    assert s.flags == []


def test_a_stream_ends_with_log_done_delete_whatever_on_done_returns(tmp_path: Path,
                                                                    runtime: str) -> None:
    """Envoy's order (the access log, then the filter's destruction), checked against Envoy in
    tests/envoy: proxy_on_done returning false does not hold a stream context back, and
    proxy_done has nothing to finish (cpp-host's WasmBase::done only waits for root contexts)."""
    g = Guest()
    g.on("proxy_on_request_headers", "(call $st (call $proxy_done))")
    g.on("proxy_on_log", "(call $st (i32.const 100)) (call $st (call $proxy_done))")
    g.on("proxy_on_done", "(call $st (i32.const 101)) (call $st (call $proxy_done))", ret=0)
    g.on("proxy_on_delete", "(call $st (i32.const 102))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [NOT_FOUND, 100, NOT_FOUND, 101, NOT_FOUND, 102]
    names = [n for n, _ in r.callbacks()]
    assert names[-3:] == ["proxy_on_log", "proxy_on_done", "proxy_on_delete"]
    assert r.run.streams[0].flags == [] and r.run.exit_code == 0


# -- cpp-host extras -------------------------------------------------------------------------
def test_emscripten_notify_memory_growth_and_pthread_equal(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.func('(func (export "_initialize") (call $emscripten_notify_memory_growth (i32.const 0)))')
    g.on("proxy_on_request_headers",
         "(call $emscripten_notify_memory_growth (i32.const 3))"
         "(call $st (call $pthread_equal (i32.const 7) (i32.const 7)))"
         "(call $st (call $pthread_equal (i32.const 7) (i32.const 8)))"
         "(call $st (call $pthread_equal (i32.const 0xffffffff) (i32.const -1)))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [1, 0, 1]
    assert r.run.failures == []


def test_clear_route_cache_abi_010(tmp_path: Path, runtime: str) -> None:
    g = Guest("0.1.0").on("proxy_on_request_headers", "(call $st (call $proxy_clear_route_cache))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK]
    assert [e.result for e in r.calls("proxy_clear_route_cache")] == ["OK"]
