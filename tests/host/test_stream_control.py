"""Stream control and local replies: pause, resume, close, send_local_response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .guest import OUT, PP, Guest, http, pairs

OK, NOT_FOUND, BAD_ARGUMENT = 0, 1, 2
MS = 1_000_000
CLIENT = {"sip": "10.0.0.2", "sp": 50124, "dip": "10.0.0.1", "dp": 443, "forward_direction": True}


def chunked_request() -> list[dict[str, Any]]:
    """A request in three packets (headers + "ab", "cd" at 1 ms, "ef" at 2 ms), response at 3 ms."""
    p = http(req_body="ab", end_stream=False)
    req, resp = p
    resp["delta_ms"] = 1
    return [req, {**CLIENT, "delta_ms": 1, "body": "cd", "end_stream": False},
            {**CLIENT, "delta_ms": 1, "body": "ef"}, resp]


def resume_on_tick(stype: int, at_ms: int, fn: str = "proxy_continue_stream") -> str:
    arg = f"(i32.const {stype})" if fn == "proxy_continue_stream" else ""
    return (f"(drop (call $proxy_set_tick_period_milliseconds (i32.const 0)))"
            f"(call $st (call $proxy_set_effective_context (i32.const 2)))"
            f"(call $st (call ${fn} {arg}))")


def set_tick(ms: int) -> str:
    return f"(drop (call $proxy_set_tick_period_milliseconds (i32.const {ms})))"


def body_sizes(r: Any, name: str = "proxy_on_request_body") -> list[tuple[int, bool, int]]:
    return [(e.args["body_size"], e.args["end_of_stream"], e.t_ns // MS)
            for e in r.run.events if e.kind == "callback" and e.name == name]


def test_headers_pause_withholds_the_body_then_one_callback(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", set_tick(5), ret=1)
    g.on("proxy_on_tick", resume_on_tick(0, 5))
    g.on("proxy_on_request_body",
         "(call $st (local.get $p1)) (call $st (local.get $p2))"
         f"(call $z) (call $r2 (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 99) {PP}))")
    g.on("proxy_on_response_headers", "(call $st (i32.const 200))")
    r = g.run(tmp_path, chunked_request(), runtime=runtime, drain_ms=10)
    assert r.tape == [OK, OK, 6, 1, OK, b"abcdef", 200]
    assert body_sizes(r) == [(6, True, 5)]
    # The server packet that arrived at 3 ms was held and delivered right after the resume.
    assert [e.t_ns // MS for e in r.run.events if e.name == "proxy_on_response_headers"] == [5]
    s = r.run.streams[0]
    assert s.actions[0] == ("proxy_on_request_headers", "stop_all_iteration_and_watermark")
    assert s.request.body == b"abcdef" and s.response.body == b"Hello World!"
    assert s.flags == [] and s.undelivered == []
    assert [(e.name, e.args) for e in r.notes("resumed")] == [
        ("resumed", {"stream": "request", "from": "headers"})]


def test_body_pause_gives_the_cumulative_size(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    # StopIterationAndBuffer (1) until the end of the stream.
    g.on("proxy_on_request_body",
         "(call $st (local.get $p1))"
         f"(call $z) (call $r2 (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 99) {PP}))"
         "(i32.eqz (local.get $p2))", ret=None)
    r = g.run(tmp_path, chunked_request(), runtime=runtime)
    # The end of the request comes as an empty last frame (Envoy's HTTP/1 codec): the buffer
    # is still the whole body then.
    assert r.tape == [2, OK, b"ab", 4, OK, b"abcd", 6, OK, b"abcdef", 6, OK, b"abcdef"]
    assert body_sizes(r) == [(2, False, 0), (4, False, 1), (6, False, 2), (6, True, 2)]
    s = r.run.streams[0]
    assert [a for _, a in s.actions[1:5]] == [
        "stop_iteration_and_buffer", "stop_iteration_and_buffer", "stop_iteration_and_buffer",
        "continue"]
    assert s.request.body == b"abcdef"


def test_a_stream_never_resumed_is_stalled_then_finished(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", "", ret=1)
    g.on("proxy_on_log", "(call $st (i32.const 100))")
    r = g.run(tmp_path, runtime=runtime)
    s = r.run.streams[0]
    assert s.flags == ["stalled"]
    assert s.undelivered == [1]
    assert r.tape == [100]
    assert r.run.exit_code == 0


def test_response_pause_and_resume(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_response_headers", set_tick(2), ret=1)
    g.on("proxy_on_tick", resume_on_tick(1, 7))
    g.on("proxy_on_response_body", "(call $st (local.get $p1))")
    r = g.run(tmp_path, runtime=runtime, drain_ms=10)
    assert r.tape == [OK, OK, 12]
    assert body_sizes(r, "proxy_on_response_body") == [(12, True, 7)]
    assert r.run.streams[0].flags == []


def test_continue_and_close_statuses(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    ops = ("(call $st (call $proxy_continue_stream (i32.const 4)))"
           "(call $st (call $proxy_close_stream (i32.const 4)))"
           "(call $st (call $proxy_continue_stream (i32.const 0)))")
    g.on("proxy_on_vm_start", ops, ret=1)
    g.on("proxy_on_request_headers", ops)
    r = g.run(tmp_path, runtime=runtime)
    # Root context: OK and nothing to act on (as Envoy answers); a stream that is not paused:
    # OK and ignored.
    assert r.tape == [BAD_ARGUMENT, BAD_ARGUMENT, OK, BAD_ARGUMENT, BAD_ARGUMENT, OK]
    assert [e.args for e in r.notes("continue_ignored")] == [
        {"stream": "request", "reason": "not paused"}]
    assert r.run.streams[0].flags == []


def test_close_stream_resets_it(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", "(call $st (call $proxy_close_stream (i32.const 0)))", ret=1)
    g.on("proxy_on_response_headers", "(call $st (i32.const 200))")
    g.on("proxy_on_log", "(call $st (i32.const 100))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, 100]
    s = r.run.streams[0]
    assert s.flags == ["reset_by_plugin"]
    assert s.undelivered == [1]


def test_abi_010_continue_request_and_response(tmp_path: Path, runtime: str) -> None:
    g = Guest("0.1.0")
    g.on("proxy_on_request_headers", set_tick(1), ret=1)
    g.on("proxy_on_response_headers", set_tick(1), ret=1)
    g.on("proxy_on_tick",
         "(call $st (call $proxy_set_effective_context (i32.const 2)))"
         "(call $st (call $proxy_continue_request))"
         "(call $st (call $proxy_continue_response))"
         "(drop (call $proxy_set_tick_period_milliseconds (i32.const 0)))")
    g.on("proxy_on_response_body", "(call $st (local.get $p1))")
    r = g.run(tmp_path, runtime=runtime, drain_ms=10)
    assert r.tape == [OK, OK, OK, OK, OK, OK, 12]
    s = r.run.streams[0]
    # 0.1.0: StopIteration stays StopIteration (cpp-host promotes it only for 0.2.x).
    assert s.actions[:2] == [("proxy_on_request_headers", "stop_iteration"),
                             ("proxy_on_response_headers", "stop_iteration")]
    assert [e.t_ns // MS for e in r.run.events if e.name == "proxy_on_response_headers"] == [5]
    assert body_sizes(r, "proxy_on_response_body") == [(12, True, 6)]
    assert r.callbacks("proxy_on_request_headers") == [{"context_id": 2, "headers": 6}]
    assert s.flags == []


# -- local replies ---------------------------------------------------------------------------
def local(g: Guest, status: int, body: str, headers: bytes, grpc: int = -1, details: str = "why") -> str:
    return (f"(call $st (call $proxy_send_local_response (i32.const {status}) {g.s(details)}"
            f" {g.s(body)} {g.s(headers)} (i32.const {grpc})))")


def test_local_reply_passes_through_the_response_callbacks(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", local(g, 403, "denied", pairs(("X-A", "b"))) + "(call $st (i32.const 1))")
    g.on("proxy_on_response_headers",
         "(call $st (local.get $p1)) (call $st (local.get $p2))"
         f"(call $z) (call $r2 (call $proxy_get_header_map_pairs (i32.const 2) {PP}))")
    g.on("proxy_on_response_body",
         "(call $st (local.get $p1)) (call $st (local.get $p2))"
         f"(call $z) (call $r2 (call $proxy_get_buffer_bytes (i32.const 1) (i32.const 0) (i32.const 99) {PP}))")
    r = g.run(tmp_path, runtime=runtime)
    reply = pairs((":status", "403"), ("x-a", "b"), ("content-length", "6"), ("content-type", "text/plain"))
    # The reply is deferred: the callback goes on after the call (the 1), then the reply is sent.
    assert r.tape == [OK, 1, 4, 0, OK, reply, 6, 1, OK, b"denied"]
    s = r.run.streams[0]
    assert s.local_reply is not None
    assert (s.local_reply.status, s.local_reply.details, s.local_reply.body) == (403, "why", b"denied")
    assert s.local_reply.headers == [(b"X-A", b"b")]
    assert s.undelivered == [1]  # the upstream response is never seen
    assert s.response.headers == [(b":status", b"403"), (b"x-a", b"b"), (b"content-length", b"6"),
                                  (b"content-type", b"text/plain")]
    assert s.response.body == b"denied"
    assert s.actions[0] == ("proxy_on_request_headers", "stop_all_iteration_and_watermark")
    assert [n for n, _ in r.callbacks()][-2:] == ["proxy_on_response_headers", "proxy_on_response_body"]


def test_local_reply_without_body_and_with_its_content_type(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", local(g, 204, "", b"", grpc=0))
    g.on("proxy_on_response_headers",
         "(call $st (local.get $p2))"
         f"(call $z) (call $r2 (call $proxy_get_header_map_pairs (i32.const 2) {PP}))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, 1, OK, pairs((":status", "204"))]
    assert r.run.streams[0].local_reply.grpc_status == 0
    g = Guest()
    g.on("proxy_on_request_headers", local(g, 200, "{}", pairs(("content-type", "application/json"))))
    r = g.run(tmp_path, runtime=runtime)
    assert r.run.streams[0].response.headers == [
        (b":status", b"200"), (b"content-type", b"application/json"), (b"content-length", b"2")]
    assert r.run.streams[0].local_reply.grpc_status is None


def test_local_reply_from_the_response_phase_replaces_the_response(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_response_headers", local(g, 502, "bad", b""))
    g.on("proxy_on_response_body", "(call $st (i32.const 99))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK]
    s = r.run.streams[0]
    assert s.response.headers == [(b":status", b"502"), (b"content-length", b"3"),
                                  (b"content-type", b"text/plain")]
    assert s.response.body == b"bad"


def test_local_reply_from_the_root_context_is_ok_and_does_nothing(tmp_path: Path,
                                                                  runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start", local(g, 403, "x", b""), ret=1)
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK]  # as Envoy answers (tests/envoy)
    assert r.run.streams[0].local_reply is None


def test_local_reply_with_bad_pointers(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers",
         "(call $st (call $proxy_send_local_response (i32.const 403) (i32.const 0) (i32.const 0)"
         " (i32.const 0xfffffff0) (i32.const 99) (i32.const 0) (i32.const 0) (i32.const -1)))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [6]
    assert r.run.streams[0].local_reply is None


def test_resumed_request_headers_are_no_longer_reachable(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    get_h1 = (f"(call $z) (call $r2 (call $proxy_get_header_map_value (i32.const 0) {g.s('h1')}"
              f" {PP}))")
    g.on("proxy_on_request_headers", set_tick(1), ret=1)
    g.on("proxy_on_tick", "(call $st (call $proxy_set_effective_context (i32.const 2)))" + get_h1
         + "(call $st (call $proxy_continue_stream (i32.const 0)))" + set_tick(0))
    g.on("proxy_on_response_headers", get_h1)
    r = g.run(tmp_path, runtime=runtime)
    # Envoy's continueStream drops the request headers: the response phase cannot reach them.
    assert r.tape == [OK, OK, b"v1", OK, BAD_ARGUMENT, b"\xaa" * 8]


def test_continue_upstream_is_unimplemented_close_is_ok(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", "(call $st (call $proxy_continue_stream (i32.const 3)))"
         "(call $st (call $proxy_continue_stream (i32.const 2)))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [12, OK]  # Envoy: UNIMPLEMENTED for the upstream side
