"""Buffers: get with clamping, status, Envoy's set rule, where each buffer exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from .guest import FILL, OUT, PP, Guest, http, u32

OK, NOT_FOUND, BAD_ARGUMENT, INVALID = 0, 1, 2, 6
UNTOUCHED = FILL * 2


def get(b: int, start: int, max_size: int) -> str:
    return (f"(call $z) (call $r2 (call $proxy_get_buffer_bytes (i32.const {b}) (i32.const {start})"
            f" (i32.const {max_size}) {PP}))")


def raw() -> str:
    return f"(call $put (i32.const {OUT}) (i32.const 8))"


def status(b: int) -> str:
    return (f"(call $z) (call $st (call $proxy_get_buffer_status (i32.const {b}) (i32.const {OUT})"
            f" (i32.const {OUT + 4}))) {raw()}")


def set_(g: Guest, b: int, start: int, size: int, data: str) -> str:
    return (f"(call $st (call $proxy_set_buffer_bytes (i32.const {b}) (i32.const {start})"
            f" (i32.const {size}) {g.s(data)}))")


def test_get_clamps_to_the_buffer_and_takes_u32_sizes(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_body",
         get(0, 0, 100) + get(0, 2, 3) + get(0, 4, 0xFFFFFFFF) + get(0, 0xFFFFFFFF, 1)
         + get(0, 6, 10) + raw() + get(0, 7, 1) + status(0))
    r = g.run(tmp_path, http(req_body="abcdef"), runtime=runtime)
    assert r.tape == [
        OK, b"abcdef", OK, b"cde", OK, b"ef",
        OK, b"",  # start past the end (4 GiB - 1, unsigned): empty, as Envoy answers
        OK, b"", u32(0) + u32(0),  # nothing left: pointer 0 and size 0, nothing allocated
        OK, b"",
        OK, u32(6) + u32(0),  # size 6, flags 0 (cpp-host never sets flags)
        # the empty frame that ends the request (Envoy's HTTP/1 codec): the body went on
        OK, b"", OK, b"", OK, b"", OK, b"", OK, b"", u32(0) + u32(0), OK, b"", OK, u32(0) + u32(0),
    ]


def test_set_follows_envoys_copy_from_rule(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_body",
         set_(g, 0, 0, 0, "<") + get(0, 0, 100)  # size 0: prepend
         + set_(g, 0, 0, 3, "[") + get(0, 0, 100)  # drop 3, prepend
         + set_(g, 0, 99, 0, ">") + get(0, 0, 100)  # start past the end: append
         + set_(g, 0, 2, 0, "!") + get(0, 0, 100)  # a start in the middle: BAD_ARGUMENT
         + set_(g, 0, 0, 1000, "new body"))  # size >= length: replace everything
    r = g.run(tmp_path, http(req_body="abcdef"), runtime=runtime)
    assert r.tape == [OK, OK, b"<abcdef", OK, OK, b"[cdef", OK, OK, b"[cdef>",
                      BAD_ARGUMENT, OK, b"[cdef>", OK,
                      # again on the empty frame that ends the request: "new body" went on
                      OK, OK, b"<", OK, OK, b"[", OK, OK, b"[>", OK, OK, b"[>!", OK]
    s = r.run.streams[0]
    assert s.request.body == b"new bodynew body"
    assert [(c["before"], c["after"]) for c in s.request.body_changes][:4] == [
        ("abcdef", "<abcdef"), ("<abcdef", "[cdef"), ("[cdef", "[cdef>"), ("[cdef>", "new body")]


def test_response_body_and_replaced_body_is_forwarded(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_response_body", get(1, 0, 5) + set_(g, 1, 0, 12, "Bye") + status(1))
    r = g.run(tmp_path, runtime=runtime)
    # then the empty frame that ends the response: an empty buffer, replaced by "Bye" again
    assert r.tape == [OK, b"Hello", OK, OK, u32(3) + u32(0), OK, b"", OK, OK, u32(3) + u32(0)]
    assert r.run.streams[0].response.body == b"ByeBye"


def test_buffers_not_available_here_are_not_found(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers",
         get(0, 0, 10) + get(1, 0, 10) + get(2, 0, 10) + get(3, 0, 10) + get(4, 0, 10)
         + get(5, 0, 10) + get(7, 0, 10) + get(8, 0, 10) + status(0) + set_(g, 0, 0, 0, "x"))
    g.on("proxy_on_response_body", get(0, 0, 10))
    r = g.run(tmp_path, http(req_body="abc"), runtime=runtime)
    # Envoy (checked in tests/envoy): a stream's body or data where it is not available reads as
    # empty and OK, and cannot be written (BAD_ARGUMENT); the callout, gRPC and plugin
    # configuration buffers are NOT_FOUND outside their callbacks.
    assert r.tape == [OK, b""] * 4 + [NOT_FOUND, UNTOUCHED] * 4 + [
        OK, u32(0) + u32(0), BAD_ARGUMENT] + [OK, b""] * 2


@pytest.mark.parametrize("btype", [9, 100, 0xFFFFFFFF])
def test_unknown_buffer_type_is_bad_argument(tmp_path: Path, runtime: str, btype: int) -> None:
    g = Guest()
    g.on("proxy_on_request_body", get(btype, 0, 1) + status(btype) + set_(g, btype, 0, 0, "x"))
    r = g.run(tmp_path, http(req_body="abc"), runtime=runtime)
    # in each proxy_on_request_body: the body, then the empty frame that ends it
    assert r.tape == [BAD_ARGUMENT, UNTOUCHED, BAD_ARGUMENT, UNTOUCHED, BAD_ARGUMENT] * 2


def test_configuration_buffers_6_and_7(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start", get(6, 0, 100) + get(7, 0, 100) + status(6), ret=1)
    g.on("proxy_on_configure",
         get(7, 0, 100) + get(7, 3, 2) + status(7) + set_(g, 7, 0, 0, "x") + get(6, 0, 3), ret=1)
    g.on("proxy_on_request_headers", get(7, 0, 100) + get(6, 0, 100))
    r = g.run(tmp_path, runtime=runtime, configuration=b'{"a": 1}', vm_configuration=b"vm-cfg")
    assert r.tape == [
        OK, b"vm-cfg", NOT_FOUND, UNTOUCHED, OK, u32(6) + u32(0),  # on_vm_start
        OK, b'{"a": 1}', OK, b'":', OK, u32(8) + u32(0), BAD_ARGUMENT, OK, b"vm-",  # on_configure
        NOT_FOUND, UNTOUCHED, OK, b"vm-cfg",  # Envoy serves the VM configuration at any time
    ]
    assert r.callbacks("proxy_on_vm_start") == [{"root_context_id": 1, "vm_configuration_size": 6}]
    assert r.callbacks("proxy_on_configure") == [
        {"root_context_id": 1, "plugin_configuration_size": 8}]


def test_empty_configuration_is_ok_with_nothing(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_configure", get(7, 0, 100) + raw() + status(7), ret=1)
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, b"", u32(0) + u32(0), OK, u32(0) + u32(0)]


def test_abi_010_get_configuration(tmp_path: Path, runtime: str) -> None:
    cfg = f"(call $z) (call $r2 (call $proxy_get_configuration {PP}))"
    g = Guest("0.1.0")
    g.on("proxy_on_vm_start", cfg, ret=1)
    g.on("proxy_on_configure", cfg, ret=1)
    g.on("proxy_on_request_headers", cfg)
    r = g.run(tmp_path, runtime=runtime, configuration=b"plugin", vm_configuration=b"vm")
    assert r.tape == [OK, b"vm", OK, b"plugin", NOT_FOUND, UNTOUCHED]


def test_abi_02x_module_importing_get_configuration_is_refused(tmp_path: Path) -> None:
    from pwcli.errors import PluginLoadError

    g = Guest("0.2.0")
    g.on("proxy_on_configure", f"(call $st (call $proxy_get_configuration {PP}))", ret=1)
    with pytest.raises(PluginLoadError, match=r"env.proxy_get_configuration \(ABI 0.1.0 only"):
        g.run(tmp_path)
    r = g.run(tmp_path, lenient=True)
    assert r.tape == [12]  # UNIMPLEMENTED from the stub


def test_bad_pointers_are_invalid_memory_access(tmp_path: Path, runtime: str) -> None:
    far = "(i32.const 0xfffffff0)"
    g = Guest()
    g.on("proxy_on_request_body",
         f"(call $st (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 9) {far} {far}))"
         f"(call $st (call $proxy_get_buffer_status (i32.const 0) {far} (i32.const {OUT})))"
         f"(call $st (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 0) {far} (i32.const 4)))")
    r = g.run(tmp_path, http(req_body="abc"), runtime=runtime)
    assert r.tape == [INVALID] * 6  # in both body callbacks (the body, then its end)
    assert r.run.streams[0].request.body == b"abc"
