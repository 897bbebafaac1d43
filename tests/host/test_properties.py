"""Properties: every name pwcli serves, in Envoy's encodings; set, overrides, FFI."""

from __future__ import annotations

from pathlib import Path

import pytest

from pwcli.host.host import EPOCH_2024_NS
from pwcli.host.properties import SERVED

from .guest import FILL, OUT, PP, Guest, http, i64, pairs

OK, NOT_FOUND, BAD_ARGUMENT, INVALID = 0, 1, 2, 6
UNTOUCHED = FILL * 2
REQ = [(":authority", "10.0.0.1"), (":path", "/p?q=1"), (":method", "GET"), (":scheme", "https"),
       ("h1", "v1"), ("user-agent", "ua/1"), ("referer", "http://r/"), ("x-request-id", "rid-1")]
RESP = [(":status", "200"), ("rh1", "rv1")]
REQ_SIZE = sum(len(n) + len(v) for n, v in REQ)
RESP_SIZE = sum(len(n) + len(v) for n, v in RESP)

# What each served property reads in proxy_on_log of the stream below (request at 0 with a 3-byte
# body, response 5 ms later with a 12-byte body), run with --root-id myroot --vm-id vm1.
EXPECTED: dict[str, bytes | None] = {
    "plugin_name": b"myroot",
    "plugin_root_id": b"myroot",
    "plugin_vm_id": b"vm1",
    "source.address": b"10.0.0.2:50124",
    "source.port": i64(50124),
    "destination.address": b"10.0.0.1:443",
    "destination.port": i64(443),
    "upstream.address": b"10.0.0.1:443",
    "upstream.port": i64(443),
    "connection.id": i64(1),
    "connection.mtls": b"\x00",
    "connection.requested_server_name": b"10.0.0.1",
    "request.path": b"/p?q=1",
    "request.url_path": b"/p",
    "request.host": b"10.0.0.1",
    "request.scheme": b"https",
    "request.method": b"GET",
    "request.headers": pairs(*REQ),
    "request.referer": b"http://r/",
    "request.useragent": b"ua/1",
    "request.id": b"rid-1",
    "request.query": b"q=1",
    "request.protocol": b"HTTP/1.1",
    "request.time": i64(EPOCH_2024_NS),
    "request.duration": i64(0),
    "request.size": i64(3),
    "request.total_size": i64(REQ_SIZE + 3),
    "response.code": i64(200),
    "response.code_details": b"via_upstream",
    "response.headers": pairs(*RESP),
    "response.trailers": b"\0\0\0\0",  # no trailers: an empty map, as Envoy answers
    "response.size": i64(12),
    "response.total_size": i64(RESP_SIZE + 12),
}


def prop(g: Guest, path: bytes) -> str:
    return f"(call $z) (call $r2 (call $proxy_get_property {g.s(path)} {PP}))"


def packets() -> list:
    p = http([[n, v] for n, v in REQ[4:]], req_body="abc")
    p[0]["uri_path"] = "/p?q=1"
    return p


def test_every_served_property_has_an_expectation() -> None:
    assert set(EXPECTED) == set(SERVED)


@pytest.mark.parametrize("name", sorted(SERVED))
def test_served_property_in_on_log(tmp_path: Path, runtime: str, name: str) -> None:
    g = Guest()
    path = name.replace(".", "\0").encode()
    g.on("proxy_on_log", prop(g, path) + prop(g, path + b"\0"))  # C++ SDK: a trailing NUL too
    r = g.run(tmp_path, packets(), runtime=runtime, root_id="myroot", vm_id="vm1")
    want = EXPECTED[name]
    one = [NOT_FOUND, UNTOUCHED] if want is None else [OK, want]
    assert r.tape == one * 2


def test_request_properties_during_the_request_and_none_in_the_root(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    body = (prop(g, b"request\0method") + prop(g, b"response\0code") + prop(g, b"source\0port")
            + prop(g, b"plugin_root_id") + prop(g, b"request\0size"))
    g.on("proxy_on_request_headers", body)
    g.on("proxy_on_vm_start", body, ret=1)
    r = g.run(tmp_path, runtime=runtime, root_id="r")
    assert r.tape == [
        NOT_FOUND, UNTOUCHED, NOT_FOUND, UNTOUCHED, NOT_FOUND, UNTOUCHED, OK, b"r",
        NOT_FOUND, UNTOUCHED,  # on_vm_start: no stream
        OK, b"GET", NOT_FOUND, UNTOUCHED, OK, i64(50124), OK, b"r", OK, i64(0),
    ]


def test_unknown_property_is_not_found(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", prop(g, b"no\0such\0thing") + prop(g, b"") + prop(g, b"source"))
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [NOT_FOUND, UNTOUCHED] * 3


def test_set_property_then_get(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    key, value = g.s(b"my\0key"), g.s(b"v\x001")
    g.on("proxy_on_request_headers",
         f"(call $st (call $proxy_set_property {key} {value}))"
         + prop(g, b"my\0key\0"))
    g.on("proxy_on_response_headers", prop(g, b"my\0key"))
    g.on("proxy_on_vm_start", prop(g, b"my\0key"), ret=1)
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [NOT_FOUND, UNTOUCHED, OK, OK, b"v\x001", OK, b"v\x001"]


def test_overrides_from_options_and_the_trace(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers",
         prop(g, b"node\0id") + prop(g, b"x\0num") + prop(g, b"x\0flag") + prop(g, b"source\0address")
         + prop(g, b"x\0map"))
    trace = {"packets": http(), "properties": {"x.flag": True, "x.num": 1, "x.map": {"k": "v"}}}
    r = g.run(tmp_path, trace, runtime=runtime,
              properties={"node.id": "n1", "x.num": 5, "source.address": "1.2.3.4:5"})
    assert r.tape == [OK, b"n1", OK, i64(5), OK, b"\x01", OK, b"1.2.3.4:5", OK, pairs(("k", "v"))]


def test_bad_pointers(tmp_path: Path, runtime: str) -> None:
    far = "(i32.const 0xfffffff0)"
    g = Guest()
    g.on("proxy_on_request_headers",
         f"(call $st (call $proxy_get_property {far} (i32.const 20) {PP}))"
         f"(call $st (call $proxy_get_property {g.s('plugin_root_id')} {far} (i32.const {OUT})))"
         f"(call $st (call $proxy_set_property {g.s('a')} {far} (i32.const 20)))")
    r = g.run(tmp_path, runtime=runtime, root_id="r")
    assert r.tape == [INVALID] * 3


def test_the_foreign_functions_envoy_registers(tmp_path: Path, runtime: str) -> None:
    import zlib

    def call(g: Guest, name: str, args: bytes) -> str:
        return (f"(call $z) (call $r2 (call $proxy_call_foreign_function {g.s(name)} {g.s(args)}"
                f" {PP}))")

    g = Guest()
    packed = zlib.compress(b"data")
    g.on("proxy_on_request_headers",
         call(g, "compress", b"data") + call(g, "uncompress", packed)
         + call(g, "uncompress", b"not zlib") + call(g, "expr_create", b"")
         + call(g, "expr_create", b"x") + call(g, "nope", b""))
    r = g.run(tmp_path, runtime=runtime)
    # tests/envoy checks these statuses against Envoy
    assert r.tape == [OK, packed, OK, b"data", 3, UNTOUCHED, BAD_ARGUMENT, UNTOUCHED,
                      12, UNTOUCHED, NOT_FOUND, UNTOUCHED]
    assert r.calls("proxy_call_foreign_function")[0].args == {"name": "compress", "args": "data"}
