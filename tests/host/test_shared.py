"""Shared data with CAS and shared queues."""

from __future__ import annotations

from pathlib import Path

from .guest import FILL, OUT, PP, Guest, http, u32

OK, NOT_FOUND, BAD_ARGUMENT, INVALID, EMPTY, CAS_MISMATCH = 0, 1, 2, 6, 7, 8
UNTOUCHED = FILL * 2
CAS = OUT + 0x10
QID = OUT + 0x20


def get(g: Guest, key: str) -> str:
    return (f"(call $z) (call $r2 (call $proxy_get_shared_data {g.s(key)} {PP} (i32.const {CAS})))"
            f"(call $put (i32.const {CAS}) (i32.const 4))")


def set_(g: Guest, key: str, value: str, cas: int | str = 0) -> str:
    c = cas if isinstance(cas, str) else f"(i32.const {cas})"
    return f"(call $st (call $proxy_set_shared_data {g.s(key)} {g.s(value)} {c}))"


def test_shared_data_with_cas(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_request_headers",
         get(g, "k") + set_(g, "k", "v1") + get(g, "k")
         + set_(g, "k", "v2", 99)  # a stale CAS
         + set_(g, "k", "v2", f"(i32.load (i32.const {CAS}))")  # the current one
         + get(g, "k") + set_(g, "k", "v3", 1)  # the first CAS is stale now
         + set_(g, "new", "x", 5)  # a CAS on an absent key is accepted (cpp-host)
         + set_(g, "empty", "") + get(g, "empty"))
    g.on("proxy_on_log", get(g, "k"))  # shared across callbacks
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [
        NOT_FOUND, UNTOUCHED, FILL,
        OK, OK, b"v1", u32(1),
        CAS_MISMATCH, OK, OK, b"v2", u32(2), CAS_MISMATCH,
        OK, OK, OK, b"", u32(4),
        OK, b"v2", u32(2),
    ]


def test_shared_data_survives_streams_and_bad_pointers(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start", set_(g, "boot", "yes"), ret=1)
    g.on("proxy_on_request_headers", get(g, "boot")
         + f"(call $st (call $proxy_get_shared_data {g.s('boot')} {PP} (i32.const 0xfffffffc)))"
         + f"(call $st (call $proxy_set_shared_data (i32.const 0xfffffff0) (i32.const 99) {g.s('v')} (i32.const 0)))")
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [OK, OK, b"yes", u32(1), INVALID, INVALID]


def register(g: Guest, name: str) -> str:
    return (f"(i32.store (i32.const {QID}) (i32.const 0xaaaaaaaa))"
            f"(call $st (call $proxy_register_shared_queue {g.s(name)} (i32.const {QID})))"
            f"(call $put (i32.const {QID}) (i32.const 4))")


def resolve(g: Guest, vm: str, name: str) -> str:
    return (f"(i32.store (i32.const {QID}) (i32.const 0xaaaaaaaa))"
            f"(call $st (call $proxy_resolve_shared_queue {g.s(vm)} {g.s(name)} (i32.const {QID})))"
            f"(call $put (i32.const {QID}) (i32.const 4))")


def enqueue(g: Guest, qid: int, value: str) -> str:
    return f"(call $st (call $proxy_enqueue_shared_queue (i32.const {qid}) {g.s(value)}))"


def dequeue(qid: int | str) -> str:
    q = qid if isinstance(qid, str) else f"(i32.const {qid})"
    return f"(call $z) (call $r2 (call $proxy_dequeue_shared_queue {q} {PP}))"


def test_queues_register_resolve_enqueue_dequeue(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start",
         register(g, "q1") + register(g, "q2") + register(g, "q1") + resolve(g, "", "q2")
         + resolve(g, "", "nope") + resolve(g, "other_vm", "q1"), ret=1)
    g.on("proxy_on_request_headers",
         dequeue(1) + enqueue(g, 1, "a") + enqueue(g, 1, "bb") + enqueue(g, 9, "x") + dequeue(9))
    g.on("proxy_on_queue_ready", "(call $st (local.get $p0)) (call $st (local.get $p1))"
         + dequeue("(local.get $p1)"))
    r = g.run(tmp_path, runtime=runtime)
    assert r.tape == [
        OK, u32(1), OK, u32(2), OK, u32(1), OK, u32(2), NOT_FOUND, FILL, NOT_FOUND, FILL,
        EMPTY, UNTOUCHED, OK, OK, NOT_FOUND, NOT_FOUND, UNTOUCHED,
        # One proxy_on_queue_ready per item, on the root context, after the callback.
        1, 1, OK, b"a", 1, 1, OK, b"bb",
    ]
    assert [e.t_ns for e in r.run.events if e.name == "proxy_on_queue_ready"] == [0, 0]


def test_queue_of_a_named_vm(tmp_path: Path, runtime: str) -> None:
    g = Guest()
    g.on("proxy_on_vm_start", register(g, "q") + resolve(g, "vm1", "q") + resolve(g, "", "q"), ret=1)
    r = g.run(tmp_path, http(), runtime=runtime, vm_id="vm1")
    assert r.tape == [OK, u32(1), OK, u32(1), NOT_FOUND, FILL]
