"""Restricted callbacks: what Envoy allows in the allocator and start-up."""

from __future__ import annotations

from pathlib import Path

from .guest import PP, Guest

OK = 0


def pairs_call() -> str:
    return f"(call $z) (call $st (call $proxy_get_header_map_pairs (i32.const 0) {PP}))"


def test_allowed_calls_inside_the_allocator(tmp_path: Path, runtime: str) -> None:
    g = Guest(malloc="(drop (call $proxy_log (i32.const 2) (i32.const 0x1000) (i32.const 5)))"
                     "(drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 0x200)))"
                     "(drop (call $poll_oneoff (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x200)))")
    g.s("alloc")  # at 0x1000
    g.on("proxy_on_request_headers", pairs_call())
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK]
    assert r.logs() == [("info", "alloc")]
    assert r.run.failures == []


def test_other_calls_inside_the_allocator_are_restricted(tmp_path: Path, runtime: str) -> None:
    g = Guest(malloc="(drop (call $proxy_set_tick_period_milliseconds (i32.const 1)))")
    g.on("proxy_on_request_headers", pairs_call())
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == []
    [f] = r.run.failures
    assert (f.kind, f.callback) == ("restricted_callback", "proxy_on_request_headers")
    assert "proxy_set_tick_period_milliseconds" in f.message
    assert r.run.streams[0].local_reply.status == 503
    # --lenient lets it through.
    r = g.run(tmp_path, runtime=runtime, lenient=True)
    assert r.tape == [OK] and r.run.failures == []


def test_start_up_allows_log_and_wasi_only(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.s("init")
    g.func('(func (export "_initialize")'
           " (drop (call $proxy_log (i32.const 2) (i32.const 0x1000) (i32.const 4)))"
           " (drop (call $random_get (i32.const 0x200) (i32.const 8)))"
           " (drop (call $environ_sizes_get (i32.const 0x200) (i32.const 0x204)))"
           " (call $emscripten_notify_memory_growth (i32.const 0)))")
    g.on("proxy_on_request_headers", "(call $st (i32.const 1))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [1] and r.logs() == [("info", "init")] and r.run.failures == []


def test_proxy_calls_in_start_up_are_restricted(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.func('(func (export "_start") (call $st (call $proxy_get_property (i32.const 0x1000)'
           ' (i32.const 4) (i32.const 0x100) (i32.const 0x104))))')
    g.s("abcd")
    g.on("proxy_on_request_headers", "(call $st (i32.const 1))")
    r = g.run(tmp_path, runtime=runtime)
    [f] = r.run.failures
    assert (f.kind, f.callback) == ("restricted_callback", "_start")
    assert r.tape == []
    assert r.run.exit_code == 1
    r = g.run(tmp_path, runtime=runtime, lenient=True)
    assert r.tape == [1, 1] and r.run.failures == []  # NOT_FOUND, then the stream
