"""WASI preview1 as proxy-wasm-cpp-host provides it, under both module names."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pwcli.host.host import EPOCH_2024_NS

from .guest import FILL, OUT, Guest, u32, u64

SUCCESS, BADF, FAULT, INVAL, NOENT, NOSYS, NOTDIR, NOTSUP = 0, 8, 21, 28, 44, 52, 20, 58
MS = 1_000_000
IOV = 0x800  # iovec arrays
MODULES = ["wasi_snapshot_preview1", "wasi_unstable"]


def outs(n: int = 16) -> str:
    return f"(call $put (i32.const {OUT}) (i32.const {n}))"


def iovecs(g: Guest, at: int, *parts: str) -> str:
    code = ""
    for i, part in enumerate(parts):
        code += (f"(i32.store (i32.const {at + 8 * i}) (i32.const {g.addr(part)}))"
                 f"(i32.store (i32.const {at + 8 * i + 4}) (i32.const {len(part.encode())}))")
    return code


def write(g: Guest, fd: int, *parts: str, fn: str = "fd_write") -> str:
    off = " (i64.const 0)" if fn == "fd_pwrite" else ""
    return (iovecs(g, IOV, *parts) + "(call $z)"
            f"(call $st (call ${fn} (i32.const {fd}) (i32.const {IOV}) (i32.const {len(parts)}){off}"
            f" (i32.const {OUT})))" + outs(4))


@pytest.mark.parametrize("module", MODULES)
def test_fd_write_lines_to_the_log(tmp_path: Path, runtime: str, module: str) -> None:
    g = Guest(wasi=module)
    g.on("proxy_on_request_headers",
         write(g, 1, "hel", "lo\nwor") + write(g, 2, "oops\n") + write(g, 1, "ld\nrest")
         + write(g, 1, "x", fn="fd_pwrite") + write(g, 3, "never\n") + write(g, 0, "in\n")
         + write(g, 5, "p", fn="fd_pwrite"))
    g.on("proxy_on_response_headers", write(g, 2, "partial"))
    r = g.run(tmp_path, runtime=runtime, log_level="trace")
    assert r.tape == [SUCCESS, u32(9), SUCCESS, u32(5), SUCCESS, u32(7), SUCCESS, u32(1),
                      BADF, FILL, BADF, FILL, BADF, FILL, SUCCESS, u32(7)]
    # One log entry per write, as Envoy (tests/envoy), a trailing newline dropped; stdout INFO,
    # stderr ERROR.
    assert r.logs() == [("info", "hello\nwor"), ("error", "oops"), ("info", "ld\nrest"),
                        ("info", "x"), ("error", "partial")]
    assert [e.args for e in r.calls("fd_write")] == [{"fd": 3}, {"fd": 0}]
    assert [e.args for e in r.calls("fd_pwrite")] == [{"fd": 5}]


def test_fd_write_bad_memory_is_fault(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers",
         f"(call $st (call $fd_write (i32.const 1) (i32.const 0xfffffff0) (i32.const 1) (i32.const {OUT})))"
         f"(i32.store (i32.const {IOV}) (i32.const 0xfffff000)) (i32.store (i32.const {IOV + 4}) (i32.const 64))"
         f"(call $st (call $fd_write (i32.const 1) (i32.const {IOV}) (i32.const 1) (i32.const {OUT})))"
         + iovecs(g, IOV, "ok\n")
         + "(call $st (call $fd_write (i32.const 1) (i32.const 0x800) (i32.const 1) (i32.const 0xfffffffe)))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [FAULT, FAULT, FAULT]
    assert r.logs() == []


@pytest.mark.parametrize("module", MODULES)
def test_environ_from_options_and_empty_args(tmp_path: Path, runtime: str, module: str) -> None:
    g = Guest(wasi=module)
    g.on("proxy_on_vm_start",
         f"(call $z) (call $st (call $environ_sizes_get (i32.const {OUT}) (i32.const {OUT + 4})))"
         + outs(8)
         + f"(call $st (call $environ_get (i32.const {OUT + 8}) (i32.const 0x900)))"
         + f"(call $put (i32.const {OUT + 8}) (i32.const 8)) (call $put (i32.const 0x900) (i32.const 10))"
         + f"(call $z) (call $st (call $args_sizes_get (i32.const {OUT}) (i32.const {OUT + 4})))"
         + outs(8)
         + f"(call $z) (call $st (call $args_get (i32.const {OUT}) (i32.const {OUT + 8})))" + outs(12),
         ret=1)
    r = g.run(tmp_path, runtime=runtime, environment={"A": "1", "BB": "xy"})
    assert r.tape == [SUCCESS, u32(2) + u32(10), SUCCESS, u32(0x900) + u32(0x904), b"A=1\0BB=xy\0",
                      SUCCESS, u32(0) + u32(0), SUCCESS, FILL * 3]
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape[:2] == [SUCCESS, u32(0) + u32(0)]


def test_clocks_are_virtual(tmp_path: Path, runtime: str) -> None:
    g = Guest()

    def clock(c: int, fn: str = "clock_time_get") -> str:
        prec = " (i64.const 1)" if fn == "clock_time_get" else ""
        return f"(call $z) (call $st (call ${fn} (i32.const {c}){prec} (i32.const {OUT})))" + outs(8)

    body = clock(0) + clock(1) + clock(2) + clock(3, "clock_res_get")
    g.on("proxy_on_vm_start", clock(0, "clock_res_get") + clock(1, "clock_res_get"), ret=1)
    g.on("proxy_on_request_headers", body)
    g.on("proxy_on_response_headers", clock(0) + clock(1))
    r = g.run(tmp_path, runtime=runtime, start_epoch_ns=EPOCH_2024_NS + 7)
    t0 = EPOCH_2024_NS + 7
    assert r.tape == [
        SUCCESS, u64(1), SUCCESS, u64(1),
        SUCCESS, u64(t0), SUCCESS, u64(1), NOTSUP, FILL * 2, NOTSUP, FILL * 2,
        # Monotonic time is the virtual time since the trace start, from 1 ns (Go refuses a 0).
        SUCCESS, u64(t0 + 5 * MS), SUCCESS, u64(5 * MS + 1),
    ]


def random(n: int) -> str:
    return (f"(call $st (call $random_get (i32.const 0x10000) (i32.const {n})))"
            f"(call $put (i32.const 0x10000) (i32.const {min(n, 32)}))")


def test_random_get_is_deterministic_by_seed(tmp_path: Path, runtime: str) -> None:
    g = Guest(pages=4)
    g.on("proxy_on_request_headers", random(16) + random(65536) + random(65537))
    a = g.run(tmp_path, runtime=runtime).tape
    b = g.run(tmp_path, runtime=runtime).tape
    c = g.run(tmp_path, runtime=runtime, seed=1).tape
    assert a == b
    assert a[0] == SUCCESS and a[2] == SUCCESS and a[4] == INVAL
    assert a[1] != c[1] and len(set(a[1])) > 4
    assert a[5] == a[3]  # nothing written on INVAL: the bytes of the previous call stay


def test_poll_oneoff_and_sched_yield(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start",
         "(call $z) (call $st (call $poll_oneoff (i32.const 0x800) (i32.const 0x900) (i32.const 1)"
         f" (i32.const {OUT})))" + outs(4) + "(call $st (call $sched_yield))", ret=1)
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [SUCCESS, u32(0), SUCCESS]


def test_proc_exit_fails_the_vm(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", write(g, 1, "bye") + "(call $proc_exit (i32.const 3)) (call $st (i32.const 99))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [SUCCESS, u32(3)]
    [f] = r.run.failures
    assert (f.kind, f.callback, f.exit_code) == ("proc_exit", "proxy_on_request_headers", 3)
    assert r.logs() == [("info", "bye")]
    s = r.run.streams[0]
    assert s.local_reply is not None and s.local_reply.status == 503
    assert r.run.exit_code == 1


# Every stub, with the code proxy-wasm-cpp-host answers: (name, arguments, errno, bytes at OUT).
FDSTAT = struct.pack("<BxHxxxxQQ", 2, 0, 64, 0)
O = f"(i32.const {OUT})"
STUBS = [
    ("fd_read", f"(i32.const 0) (i32.const {IOV}) (i32.const 1) {O}", NOSYS, FILL),
    ("fd_pread", f"(i32.const 0) (i32.const {IOV}) (i32.const 1) (i64.const 0) {O}", NOSYS, FILL),
    ("fd_seek", f"(i32.const 1) (i64.const 0) (i32.const 0) {O}", SUCCESS, FILL),
    ("fd_close", "(i32.const 1)", SUCCESS, FILL),
    ("fd_fdstat_get", f"(i32.const 1) {O}", SUCCESS, FDSTAT),
    ("fd_fdstat_get", f"(i32.const 2) {O}", SUCCESS, FDSTAT),
    ("fd_fdstat_get", f"(i32.const 3) {O}", BADF, FILL),
    ("fd_fdstat_set_flags", "(i32.const 1) (i32.const 0)", NOSYS, FILL),
    ("fd_fdstat_set_rights", "(i32.const 1) (i64.const 0) (i64.const 0)", SUCCESS, FILL),
    ("fd_fdstat_set_rights", "(i32.const 4) (i64.const 0) (i64.const 0)", BADF, FILL),
    ("fd_prestat_get", f"(i32.const 3) {O}", BADF, FILL),
    ("fd_prestat_dir_name", f"(i32.const 3) {O} (i32.const 8)", NOSYS, FILL),
    ("fd_filestat_get", f"(i32.const 1) {O}", BADF, FILL),
    ("fd_advise", "(i32.const 9) (i64.const 0) (i64.const 0) (i32.const 0)", SUCCESS, FILL),
    ("fd_allocate", "(i32.const 1) (i64.const 0) (i64.const 0)", SUCCESS, FILL),
    ("fd_allocate", "(i32.const 9) (i64.const 0) (i64.const 0)", BADF, FILL),
    ("fd_datasync", "(i32.const 2)", SUCCESS, FILL),
    ("fd_datasync", "(i32.const 9)", BADF, FILL),
    ("fd_sync", "(i32.const 1)", SUCCESS, FILL),
    ("fd_sync", "(i32.const 0)", BADF, FILL),
    ("fd_filestat_set_size", "(i32.const 1) (i64.const 0)", SUCCESS, FILL),
    ("fd_filestat_set_size", "(i32.const 9) (i64.const 0)", BADF, FILL),
    ("fd_filestat_set_times", "(i32.const 2) (i64.const 0) (i64.const 0) (i32.const 0)", SUCCESS, FILL),
    ("fd_filestat_set_times", "(i32.const 9) (i64.const 0) (i64.const 0) (i32.const 0)", BADF, FILL),
    ("fd_tell", f"(i32.const 1) {O}", SUCCESS, u64(0)),
    ("fd_tell", f"(i32.const 9) {O}", BADF, FILL),
    ("fd_readdir", f"(i32.const 3) (i32.const 0x900) (i32.const 64) (i64.const 0) {O}", NOTDIR, u32(0)),
    ("fd_renumber", "(i32.const 1) (i32.const 5)", NOTSUP, FILL),
    ("fd_renumber", "(i32.const 7) (i32.const 5)", BADF, FILL),
    ("path_open", "(i32.const 3) (i32.const 0) (i32.const 0x1000) (i32.const 4) (i32.const 0)"
                  f" (i64.const 0) (i64.const 0) (i32.const 0) {O}", NOENT, FILL),
    ("path_filestat_get", f"(i32.const 3) (i32.const 0) (i32.const 0x1000) (i32.const 4) {O}", NOTSUP, FILL),
    ("path_create_directory", "(i32.const 3) (i32.const 0x1000) (i32.const 4)", NOTSUP, FILL),
    ("path_remove_directory", "(i32.const 3) (i32.const 0x1000) (i32.const 4)", NOTSUP, FILL),
    ("path_unlink_file", "(i32.const 3) (i32.const 0x1000) (i32.const 4)", NOTSUP, FILL),
    ("path_rename", "(i32.const 3) (i32.const 0x1000) (i32.const 4) (i32.const 3) (i32.const 0x1000)"
                    " (i32.const 4)", NOTSUP, FILL),
    ("path_readlink", "(i32.const 3) (i32.const 0x1000) (i32.const 4) (i32.const 0x900) (i32.const 16)"
                      f" {O}", NOTSUP, u32(0)),
    ("path_filestat_set_times", "(i32.const 3) (i32.const 0) (i32.const 0x1000) (i32.const 4)"
                                " (i64.const 0) (i64.const 0) (i32.const 0)", NOTSUP, FILL),
    ("sock_accept", f"(i32.const 3) (i32.const 0) {O}", NOTSUP, u32(0)),
    ("sock_recv", f"(i32.const 3) (i32.const {IOV}) (i32.const 0) (i32.const 0) {O} (i32.const {OUT + 4})",
     NOTSUP, u32(0) + u32(0)),
    ("sock_send", f"(i32.const 3) (i32.const {IOV}) (i32.const 0) (i32.const 0) {O}", NOTSUP, u32(0)),
    ("sock_shutdown", "(i32.const 3) (i32.const 0)", NOTSUP, FILL),
]


@pytest.mark.parametrize("module", MODULES)
def test_every_file_and_socket_stub(tmp_path: Path, runtime: str, module: str) -> None:
    g = Guest(wasi=module)
    g.s("path")  # at 0x1000
    body = "".join(f"(call $z) (call $st (call ${name} {args})) (call $put (i32.const {OUT}) (i32.const {len(out)}))"
                   for name, args, _, out in STUBS)
    g.on("proxy_on_request_headers", body)
    r = g.run(tmp_path, runtime=runtime)
    want = []
    for _, _, errno, out in STUBS:
        want += [errno, out]
    assert r.tape == want
    assert r.run.failures == []


def test_the_stub_table_covers_every_wasi_function() -> None:
    from pwcli.host.spec import WASI_FUNCTIONS

    covered = {n for n, *_ in STUBS} | {
        "fd_write", "fd_pwrite", "environ_get", "environ_sizes_get", "args_get", "args_sizes_get",
        "clock_time_get", "clock_res_get", "random_get", "poll_oneoff", "sched_yield", "proc_exit"}
    assert covered == set(WASI_FUNCTIONS)


def test_bad_out_pointers_are_fault(tmp_path: Path, runtime: str) -> None:
    far = "(i32.const 0xfffffffc)"
    g = Guest()
    g.on("proxy_on_request_headers",
         f"(call $st (call $clock_time_get (i32.const 0) (i64.const 1) {far}))"
         f"(call $st (call $environ_sizes_get {far} {far}))"
         f"(call $st (call $random_get {far} (i32.const 16)))"
         f"(call $st (call $fd_fdstat_get (i32.const 1) {far}))"
         f"(call $st (call $poll_oneoff (i32.const 0) (i32.const 0) (i32.const 0) {far}))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [FAULT] * 5
