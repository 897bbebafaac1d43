"""Header maps: every map operation, Envoy's rules, and when each map is reachable."""

from __future__ import annotations

from pathlib import Path

import pytest

from .guest import FILL, OUT, PP, Guest, http, pairs, u32

OK, NOT_FOUND, BAD_ARGUMENT, INVALID = 0, 1, 2, 6
UNTOUCHED = FILL * 2
REQ = [(":authority", "10.0.0.1"), (":path", "/p"), (":method", "GET"), (":scheme", "https"),
       ("h1", "v1"), ("user-agent", "ua/1")]


def get(g: Guest, m: int, key: str) -> str:
    return f"(call $z) (call $r2 (call $proxy_get_header_map_value (i32.const {m}) {g.s(key)} {PP}))"


def get_pairs(m: int) -> str:
    return f"(call $z) (call $r2 (call $proxy_get_header_map_pairs (i32.const {m}) {PP}))"


def size(m: int) -> str:
    return (f"(call $z) (call $st (call $proxy_get_header_map_size (i32.const {m}) (i32.const {OUT})))"
            f" (call $put (i32.const {OUT}) (i32.const 4))")


def add(g: Guest, m: int, k: str, v: str) -> str:
    return f"(call $st (call $proxy_add_header_map_value (i32.const {m}) {g.s(k)} {g.s(v)}))"


def replace(g: Guest, m: int, k: str, v: str) -> str:
    return f"(call $st (call $proxy_replace_header_map_value (i32.const {m}) {g.s(k)} {g.s(v)}))"


def remove(g: Guest, m: int, k: str) -> str:
    return f"(call $st (call $proxy_remove_header_map_value (i32.const {m}) {g.s(k)}))"


def set_pairs(g: Guest, m: int, data: bytes) -> str:
    return f"(call $st (call $proxy_set_header_map_pairs (i32.const {m}) {g.s(data)}))"


def test_pairs_and_size_of_the_request_headers(tmp_path: Path, runtime: str) -> None:
    g = Guest().on("proxy_on_request_headers", get_pairs(0) + size(0))
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, pairs(*REQ), OK, u32(sum(len(n) + len(v) for n, v in REQ))]
    assert r.callbacks("proxy_on_request_headers") == [
        {"context_id": 2, "headers": 6, "end_of_stream": True}]


def test_get_value_first_match_case_insensitive_missing(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", get(g, 0, "User-Agent") + get(g, 0, "x") + get(g, 0, ":path")
         + get(g, 0, "dup"))
    r = g.run(tmp_path, http({"h1": "v1", "User-Agent": "ua/1", "dup": "1"}), runtime=runtime)
    assert r.tape == [OK, b"ua/1", NOT_FOUND, UNTOUCHED, OK, b"/p", OK, b"1"]


def test_get_value_returns_the_first_of_duplicates(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", get(g, 0, "dup"))
    r = g.run(tmp_path, http([["dup", "first"], ["Dup", "second"]]), runtime=runtime)
    assert r.tape == [OK, b"first"]


def test_abi_010_missing_key_is_ok_and_empty(tmp_path: Path, runtime: str) -> None:
    g = Guest("0.1.0")
    g.on("proxy_on_request_headers", get(g, 0, "nope") + f"(call $put (i32.const {OUT}) (i32.const 8))")
    r = g.run(tmp_path, runtime=runtime)
    # cpp-host writes pointer 0, size 0 without allocating for an empty value.
    assert r.tape == [OK, b"", u32(0) + u32(0)]


def test_add_appends_lower_case_and_keeps_duplicates(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", add(g, 0, "X-Foo", "1") + add(g, 0, "x-foo", "2")
         + get(g, 0, "x-foo") + get_pairs(0))
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, OK, OK, b"1", OK, pairs(*REQ, ("x-foo", "1"), ("x-foo", "2"))]
    s = r.run.streams[0]
    assert s.request.headers == [(n.encode(), v.encode()) for n, v in REQ] + [
        (b"x-foo", b"1"), (b"x-foo", b"2")]
    assert [(c.map, c.op, c.name, c.before, c.after) for c in s.changes] == [
        ("request_headers", "add", "x-foo", None, "1"),
        ("request_headers", "add", "x-foo", None, "2"),
    ]


def test_replace_removes_every_match_and_moves_to_the_end(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", replace(g, 0, "A", "new") + replace(g, 0, "absent", "x")
         + get_pairs(0))
    r = g.run(tmp_path, http([["a", "1"], ["b", "2"], ["A", "3"]]), runtime=runtime)
    head = REQ[:4]
    assert r.tape == [OK, OK, OK, pairs(*head, ("b", "2"), ("a", "new"), ("absent", "x"))]
    assert [(c.op, c.name, c.before, c.after) for c in r.run.streams[0].changes] == [
        ("replace", "a", "1", "new"), ("add", "absent", None, "x")]


def test_remove_removes_every_match_and_is_ok_when_absent(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", remove(g, 0, "A") + remove(g, 0, "absent") + get_pairs(0))
    r = g.run(tmp_path, http([["a", "1"], ["b", "2"], ["A", "3"]]), runtime=runtime)
    assert r.tape == [OK, OK, OK, pairs(*REQ[:4], ("b", "2"))]
    assert [(c.op, c.name, c.before) for c in r.run.streams[0].changes] == [("remove", "a", "1")]


def test_set_pairs_replaces_the_map_and_lowers_names(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_response_headers",
         set_pairs(g, 2, pairs((":status", "201"), ("X-New", "v"))) + get_pairs(2) + size(2))
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, OK, pairs((":status", "201"), ("x-new", "v")), OK, u32(7 + 3 + 5 + 1)]
    assert r.run.streams[0].response.headers == [(b":status", b"201"), (b"x-new", b"v")]


def test_set_pairs_empty_and_malformed_give_an_empty_map(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    bad = pairs(("a", "b"))[:-1]  # the last NUL is missing: cpp-host decodes an empty map
    g.on("proxy_on_request_headers",
         set_pairs(g, 0, bad) + get_pairs(0) + f"(call $put (i32.const {OUT}) (i32.const 8))"
         + add(g, 0, "k", "v") + set_pairs(g, 0, u32(0)) + size(0))
    r = g.run(tmp_path, runtime=runtime)
    # An empty map: OK with pointer 0 and size 0, nothing allocated.
    assert r.tape == [OK, OK, b"", u32(0) + u32(0), OK, OK, OK, u32(0)]


@pytest.mark.parametrize("op", ["get", "pairs", "size", "add", "replace", "remove", "set"])
def test_map_type_over_7_is_bad_argument(tmp_path: Path, runtime: str, op: str) -> None:
    g = Guest()
    body = {
        "get": get(g, 8, "a"), "pairs": get_pairs(8), "size": size(8), "add": add(g, 8, "a", "b"),
        "replace": replace(g, 8, "a", "b"), "remove": remove(g, 8, "a"),
        "set": set_pairs(g, 8, pairs(("a", "b"))),
    }[op]
    r = g.on("proxy_on_request_headers", body).run(tmp_path, runtime=runtime)
    assert r.tape[0] == BAD_ARGUMENT
    if op in ("get", "pairs"):
        assert r.tape[1] == UNTOUCHED
    if op == "size":
        assert r.tape[1] == FILL


def test_request_headers_are_gone_in_the_response_phase(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", get(g, 2, ":status") + add(g, 2, "x", "y") + get(g, 3, "t"))
    g.on("proxy_on_response_headers", get(g, 0, "h1") + add(g, 0, "x", "y") + size(0)
         + get(g, 2, ":status"))
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [
        BAD_ARGUMENT, UNTOUCHED, BAD_ARGUMENT, BAD_ARGUMENT, UNTOUCHED,  # request phase
        BAD_ARGUMENT, UNTOUCHED, BAD_ARGUMENT, BAD_ARGUMENT, FILL, OK, b"200",  # response phase
    ]


def test_both_header_maps_are_readable_not_writable_in_on_log(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_log", get(g, 0, "h1") + get(g, 2, "rh1") + add(g, 0, "x", "y")
         + remove(g, 2, "rh1"))
    g.on("proxy_on_done", get(g, 0, "h1"), ret=1)
    r = g.run(tmp_path, runtime=runtime)
    # proxy_on_log runs first (Envoy's access log), then proxy_on_done: no map there
    assert r.tape == [OK, b"v1", OK, b"rv1", BAD_ARGUMENT, BAD_ARGUMENT, BAD_ARGUMENT, UNTOUCHED]


def test_no_stream_maps_in_the_root_context(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start", get(g, 0, "h1") + get_pairs(2) + add(g, 1, "a", "b"), ret=1)
    r = g.run(tmp_path, runtime=runtime)
    # a value is not there (BAD_ARGUMENT), the pairs are none (OK, empty), nothing to add to
    assert r.tape == [BAD_ARGUMENT, UNTOUCHED, OK, b"", BAD_ARGUMENT]


def test_trailers_in_their_callback_and_added_from_the_last_body(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_body", get_pairs(1) + add(g, 1, "x-t", "1") + get_pairs(1))
    g.on("proxy_on_response_trailers", get_pairs(3) + replace(g, 3, "rt", "new") + get(g, 3, "rt")
         + get(g, 2, ":status"))
    packets = http(req_body="abc")
    packets[1]["trailers"] = {"rt": "old"}
    r = g.run(tmp_path, packets, runtime=runtime)
    assert r.tape == [
        OK, b"", BAD_ARGUMENT, OK, b"",  # the body: not the end, no trailers to add to yet
        OK, b"", OK, OK, pairs(("x-t", "1")),  # the empty frame that ends it
        OK, pairs(("rt", "old")), OK, OK, b"new", BAD_ARGUMENT, UNTOUCHED,
    ]
    s = r.run.streams[0]
    assert s.request.trailers == [(b"x-t", b"1")]
    assert s.response.trailers == [(b"rt", b"new")]


def test_trailers_cannot_be_added_before_the_last_body_chunk(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_body", add(g, 1, "x-t", "1"))
    packets = http(req_body="ab", end_stream=False)
    packets.insert(1, {**{k: packets[0][k] for k in ("sip", "sp", "dip", "dp")},
                       "forward_direction": True, "body": "cd"})
    r = g.run(tmp_path, packets, runtime=runtime)
    assert r.tape == [BAD_ARGUMENT, BAD_ARGUMENT, OK]
    assert r.callbacks("proxy_on_request_body") == [
        {"context_id": 2, "body_size": 2, "end_of_stream": False},
        {"context_id": 2, "body_size": 2, "end_of_stream": False},
        {"context_id": 2, "body_size": 0, "end_of_stream": True},
    ]


def test_http_call_and_grpc_maps_only_in_their_callbacks(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", "".join(get_pairs(m) for m in (4, 5, 6, 7)))
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, b""] * 4  # Envoy: no pairs outside their callbacks


def test_bad_pointers_are_invalid_memory_access(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    far = "(i32.const 0xfffffff0)"
    g.on("proxy_on_request_headers",
         f"(call $st (call $proxy_get_header_map_value (i32.const 0) {far} (i32.const 32) {PP}))"
         f"(call $st (call $proxy_get_header_map_value (i32.const 0) {g.s('h1')} {far} {far}))"
         f"(call $st (call $proxy_add_header_map_value (i32.const 0) {g.s('a')} {far} (i32.const 1)))"
         f"(call $st (call $proxy_set_header_map_pairs (i32.const 0) (i32.const 0x3ffff) (i32.const 8)))"
         f"(call $st (call $proxy_get_header_map_size (i32.const 0) {far}))"
         f"(call $st (call $proxy_get_header_map_pairs (i32.const 0) (i32.const {OUT}) {far}))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [INVALID] * 6
    assert r.run.streams[0].request.headers == [(n.encode(), v.encode()) for n, v in REQ]
    assert r.run.failures == []
