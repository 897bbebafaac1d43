"""Out-of-band calls: http calls and gRPC calls/streams answered from the trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pwcli.host.codec import encode_pairs

from .guest import FILL, OUT, PP, Guest, http, pairs, u32

OK, NOT_FOUND, BAD_ARGUMENT, PARSE_FAILURE, INVALID = 0, 1, 2, 4, 6
UNTOUCHED = FILL * 2
MS = 1_000_000
TOKEN = OUT + 0x20
GOOD = pairs((":method", "GET"), (":path", "/check"), (":authority", "auth"))


def call(g: Guest, upstream: str, headers: bytes, body: str = "q", trailers: bytes = b"",
         timeout: int = 1000) -> str:
    return (f"(i32.store (i32.const {TOKEN}) (i32.const 0xaaaaaaaa))"
            f"(call $st (call $proxy_http_call {g.s(upstream)} {g.s(headers)} {g.s(body)}"
            f" {g.s(trailers)} (i32.const {timeout}) (i32.const {TOKEN})))"
            f"(call $put (i32.const {TOKEN}) (i32.const 4))")


def trace(upstreams: dict[str, Any]) -> dict[str, Any]:
    return {"packets": http(), "upstreams": upstreams}


def getp(m: int) -> str:
    return f"(call $z) (call $r2 (call $proxy_get_header_map_pairs (i32.const {m}) {PP}))"


def getb(b: int) -> str:
    return (f"(call $z) (call $r2 (call $proxy_get_buffer_bytes (i32.const {b}) (i32.const 0)"
            f" (i32.const 0xffffffff) {PP}))")


def record_args(n: int) -> str:
    return "".join(f"(call $st (local.get $p{i}))" for i in range(n))


def test_http_call_answered_after_its_delay_and_the_stream_resumed(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", call(g, "auth", GOOD, trailers=pairs(("tr", "1"))), ret=1)
    g.on("proxy_on_http_call_response",
         record_args(5) + getp(6) + getb(4) + getp(7)
         + f"(call $st (call $proxy_set_buffer_bytes (i32.const 4) (i32.const 0) (i32.const 0) {g.s('x')}))"
         + f"(call $st (call $proxy_add_header_map_value (i32.const 6) {g.s('a')} {g.s('b')}))"
         + getp(0)  # the root context has no stream
         + "(call $st (call $proxy_set_effective_context (i32.const 2)))"
         + "(call $st (call $proxy_continue_stream (i32.const 0)))")
    up = {"auth": {"status": 201, "headers": {"X-R": "1"}, "body": "ok", "trailers": {"t": "v"},
                   "delay_ms": 3}}
    r = g.run(tmp_path, trace(up), runtime=runtime)
    assert r.tape == [
        OK, u32(1),
        1, 1, 2, 2, 1,  # root context 1, token 1, 2 headers, 2 body bytes, 1 trailer
        OK, pairs((":status", "201"), ("x-r", "1")), OK, b"ok", OK, pairs(("t", "v")),
        BAD_ARGUMENT, BAD_ARGUMENT,  # read-only
        OK, b"",  # the root context has no stream: no pairs (as Envoy answers)
        OK, OK,
    ]
    [ev] = [e for e in r.run.events if e.name == "proxy_on_http_call_response"]
    assert (ev.t_ns, ev.ctx) == (3 * MS, 1)
    [hc] = r.calls("proxy_http_call")
    assert hc.args == {"upstream": "auth", "headers": [[":method", "GET"], [":path", "/check"],
                                                       [":authority", "auth"]],
                       "body": "q", "trailers": [["tr", "1"]], "timeout_ms": 1000}
    assert hc.result == {"status": "OK", "value": 1}
    s = r.run.streams[0]
    assert s.flags == [] and s.response.body == b"Hello World!"
    # The request resumed at 3 ms; the response (5 ms) was not held back.
    assert [e.t_ns // MS for e in r.run.events if e.name == "proxy_on_response_headers"] == []
    assert r.notes("resumed")[0].t_ns == 3 * MS


def test_http_call_argument_checks(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    no_method = pairs((":path", "/"), (":authority", "a"))
    no_path = pairs((":method", "GET"), (":authority", "a"))
    no_authority = pairs((":method", "GET"), (":path", "/"))
    g.on("proxy_on_request_headers",
         call(g, "auth", no_method) + call(g, "auth", no_path) + call(g, "auth", no_authority)
         + call(g, "nowhere", GOOD) + call(g, "auth", b"\x05\0\0\0")  # malformed pairs: empty
         + f"(call $st (call $proxy_http_call {g.s('auth')} {g.s(GOOD)} {g.s('')} {g.s('')}"
         f" (i32.const 1000) (i32.const 0xfffffffc)))")
    g.on("proxy_on_http_call_response", "(call $st (i32.const 99))")
    r = g.run(tmp_path, trace({"auth": {"body": "x"}}), runtime=runtime)
    assert r.tape == [BAD_ARGUMENT, FILL] * 5 + [INVALID]
    assert r.run.failures == []


def test_reset_fails_the_call_and_timeout_answers_504(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", call(g, "slow", GOOD, timeout=10) + call(g, "broken", GOOD))
    g.on("proxy_on_http_call_response", record_args(5) + getp(6) + getb(4) + status())
    up = {"slow": {"body": "late", "delay_ms": 50}, "broken": {"fail": "reset", "delay_ms": 1}}
    r = g.run(tmp_path, trace(up), runtime=runtime)
    # A reset is Envoy's onHttpCallFailure: no headers, body or trailers; proxy_get_status says
    # BrokenConnection (11), "reset".
    failed = [OK, b"", NOT_FOUND, UNTOUCHED, OK, b"reset", u32(11)]
    # A timeout is the async client router's local reply: a 504 response.
    timeout_headers = encode_pairs([(b":status", b"504"), (b"content-length", b"24"),
                                    (b"content-type", b"text/plain")])
    # proxy_get_status still answers the root context's last status (Envoy's Context::getStatus)
    timed_out = [OK, timeout_headers, OK, b"upstream request timeout", OK, b"reset", u32(11)]
    assert r.tape == [
        OK, u32(1), OK, u32(2),
        1, 2, 0, 0, 0, *failed,  # reset at 1 ms
        1, 1, 3, 24, 0, *timed_out,  # timeout at 10 ms
    ]
    assert [e.t_ns // MS for e in r.run.events if e.name == "proxy_on_http_call_response"] == [1, 10]
    assert [e.args["reason"] for e in r.notes("callout_failed")] == ["reset", "timeout"]


def test_a_list_answers_consecutive_calls(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", call(g, "auth", GOOD) + call(g, "auth", GOOD))
    g.on("proxy_on_http_call_response", record_args(4) + getb(4)
         + f"(call $z) (call $r2 (call $proxy_get_header_map_value (i32.const 6) {g.s(':status')} {PP}))")
    up = {"auth": [{"body": "a", "delay_ms": 2}, {"status": 503, "body": "bb", "delay_ms": 1}]}
    r = g.run(tmp_path, trace(up), runtime=runtime)
    assert r.tape == [OK, u32(1), OK, u32(2),
                      1, 2, 1, 2, OK, b"bb", OK, b"503",
                      1, 1, 1, 1, OK, b"a", OK, b"200"]


def test_pending_answers_are_delivered_after_the_last_packet(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_response_headers", call(g, "auth", GOOD))
    g.on("proxy_on_http_call_response", record_args(2))
    r = g.run(tmp_path, trace({"auth": {"delay_ms": 100}}), runtime=runtime)
    assert r.tape == [OK, u32(1), 1, 1]
    assert r.run.end_ns == 105 * MS


# -- gRPC ------------------------------------------------------------------------------------
def grpc_call(g: Guest, upstream: str = "grpc", message: str = "req") -> str:
    return (f"(i32.store (i32.const {TOKEN}) (i32.const 0xaaaaaaaa))"
            f"(call $st (call $proxy_grpc_call {g.s(upstream)} {g.s('pkg.Svc')} {g.s('Do')}"
            f" {g.s(pairs(('md', '1')))} {g.s(message)} (i32.const 1000) (i32.const {TOKEN})))"
            f"(call $put (i32.const {TOKEN}) (i32.const 4))")


def grpc_stream(g: Guest, upstream: str = "grpc") -> str:
    return (f"(i32.store (i32.const {TOKEN}) (i32.const 0xaaaaaaaa))"
            f"(call $st (call $proxy_grpc_stream {g.s(upstream)} {g.s('pkg.Svc')} {g.s('Watch')}"
            f" {g.s(b'')} (i32.const {TOKEN})))"
            f"(call $put (i32.const {TOKEN}) (i32.const 4))")


def status() -> str:
    """Records the status, the message (or the untouched pair), then the code."""
    return (f"(call $z) (call $r2 (call $proxy_get_status (i32.const {OUT + 8}) {PP}))"
            f"(call $put (i32.const {OUT + 8}) (i32.const 4))")


def grpc_guest() -> Guest:
    g = Guest()
    g.on("proxy_on_grpc_receive_initial_metadata", record_args(3) + getp(4) + getp(5))
    g.on("proxy_on_grpc_receive", record_args(3) + getb(5) + getp(4))
    g.on("proxy_on_grpc_receive_trailing_metadata", record_args(3) + getp(5))
    g.on("proxy_on_grpc_close", record_args(3) + status())
    return g


GRPC_UP = {"grpc": {"initial_metadata": {"a": "1"}, "messages": ["m1", "m22"],
                    "trailing_metadata": {"t": "2"}, "grpc_status": 5, "grpc_message": "nope",
                    "delay_ms": 2}}


def test_grpc_call_and_its_answer(tmp_path: Path, runtime: str) -> None:
    g = grpc_guest()
    g.on("proxy_on_request_headers", grpc_call(g) + status())
    r = g.run(tmp_path, trace(GRPC_UP), runtime=runtime)
    assert r.tape == [
        OK, u32(1), OK, b"", u32(0),  # no status yet: OK, 0 and "" (Envoy's Context::getStatus)
        1, 1, 1, OK, pairs(("a", "1")), OK, b"",  # no pairs of another callback's map
        1, 1, 2, OK, b"m1", OK, b"",
        1, 1, 3, OK, b"m22", OK, b"",
        1, 1, 1, OK, pairs(("t", "2")),
        1, 1, 5, OK, b"nope", u32(5),
    ]
    [c] = r.calls("proxy_grpc_call")
    assert c.args == {"upstream": "grpc", "service": "pkg.Svc", "method": "Do",
                      "metadata": [["md", "1"]], "message": "req", "timeout_ms": 1000}
    assert {e.t_ns for e in r.run.events if e.name.startswith("proxy_on_grpc")} == {2 * MS}


def test_grpc_unknown_upstream_is_parse_failure(tmp_path: Path, runtime: str) -> None:
    g = grpc_guest()
    g.on("proxy_on_request_headers", grpc_call(g, "nowhere") + grpc_stream(g, "nowhere"))
    r = g.run(tmp_path, trace(GRPC_UP), runtime=runtime)
    assert r.tape == [PARSE_FAILURE, FILL, PARSE_FAILURE, FILL]


def test_grpc_stream_send_close_cancel(tmp_path: Path, runtime: str) -> None:
    g = grpc_guest()
    g.on("proxy_on_request_headers",
         grpc_stream(g)
         + f"(call $st (call $proxy_grpc_send (i32.const 1) {g.s('a')} (i32.const 0)))"
         + f"(call $st (call $proxy_grpc_send (i32.const 1) {g.s('b')} (i32.const 1)))"
         + f"(call $st (call $proxy_grpc_send (i32.const 7) {g.s('c')} (i32.const 0)))"
         + grpc_call(g)
         + f"(call $st (call $proxy_grpc_send (i32.const 2) {g.s('d')} (i32.const 0)))"
         + "(call $st (call $proxy_grpc_cancel (i32.const 9))) (call $st (call $proxy_grpc_close (i32.const 9)))")
    up = {"grpc": {"messages": ["s1"], "grpc_status": 0, "delay_ms": 1}}
    r = g.run(tmp_path, trace(up), runtime=runtime)
    # Sends on the stream; on an unknown token and on a unary call: NOT_FOUND; cancel and close
    # of an unknown token: NOT_FOUND.
    assert r.tape[:10] == [OK, u32(1), OK, OK, NOT_FOUND, OK, u32(2), NOT_FOUND, NOT_FOUND, NOT_FOUND]
    # Both answers arrive: the stream's message and close, then the call's.
    assert r.tape[10:] == [1, 1, 2, OK, b"s1", OK, b"", 1, 1, 0, OK, b"", u32(0),
                           1, 2, 2, OK, b"s1", OK, b"", 1, 2, 0, OK, b"", u32(0)]
    assert [e.args for e in r.calls("proxy_grpc_send")][:2] == [
        {"token": 1, "message": "a", "end_stream": False},
        {"token": 1, "message": "b", "end_stream": True}]


def test_cancelled_and_closed_calls_are_not_answered(tmp_path: Path, runtime: str) -> None:
    g = grpc_guest()
    g.on("proxy_on_request_headers",
         grpc_call(g) + grpc_call(g)
         + "(call $st (call $proxy_grpc_cancel (i32.const 1)))"
         + "(call $st (call $proxy_grpc_close (i32.const 2)))"
         + "(call $st (call $proxy_grpc_cancel (i32.const 1)))")
    up = {"grpc": {"messages": ["s1"], "grpc_status": 0, "delay_ms": 1}}
    r = g.run(tmp_path, trace(up), runtime=runtime)
    assert r.tape == [OK, u32(1), OK, u32(2), OK, OK, NOT_FOUND]
    assert [e for e in r.run.events if e.name.startswith("proxy_on_grpc")] == []


def test_a_closed_stream_still_gets_the_servers_answer(tmp_path: Path, runtime: str) -> None:
    g = grpc_guest()
    g.on("proxy_on_request_headers",
         grpc_stream(g) + "(call $st (call $proxy_grpc_close (i32.const 1)))"
         + f"(call $st (call $proxy_grpc_send (i32.const 1) {g.s('late')} (i32.const 0)))")
    up = {"grpc": {"messages": ["s1"], "grpc_status": 0, "delay_ms": 1}}
    r = g.run(tmp_path, trace(up), runtime=runtime)
    # Envoy half-closes a stream on proxy_grpc_close: no more sends, the server's side arrives.
    assert r.tape == [OK, u32(1), OK, NOT_FOUND,
                      1, 1, 2, OK, b"s1", OK, b"", 1, 1, 0, OK, b"", u32(0)]
