"""Hostile guests for the fault, sandbox and fuzz tests: a WAT plugin that calls any host function
with arguments the test chooses at run time.

The caller guest reads its orders from the ``fuzz`` property (set with ``ReplayOptions.properties``):
a little-endian u32 function index, 4 bytes of padding, then one u64 per argument (an i32 argument
takes the low 32 bits). It obeys only on a stream whose request has an ``x-fuzz`` header, once in
``proxy_on_request_headers`` and once in ``proxy_on_request_body``; the status the host answered is
left in linear memory (``STATUS_ADDR``), so the test reads exactly what the plugin got.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from pwcli.host.spec import HOST_FUNCTIONS, V010, V021, WASI_FUNCTIONS, Signature

from .conftest import wat_module

CALLS_ADDR = 0x40  # how many orders the guest carried out
STATUS_ADDR = 0x80  # the status of order i is the u32 at STATUS_ADDR + 4 * i
NO_RESULT = 0xDEAD  # the status left by a host function without a result

# Host functions a caller guest can import for each ABI (module, name, signature).
Target = tuple[str, str, Signature]


def targets(abi: str) -> list[Target]:
    env = [("env", n, s.signature) for n, s in sorted(HOST_FUNCTIONS.items()) if abi in s.versions]
    wasi = [("wasi_snapshot_preview1", n, s) for n, s in sorted(WASI_FUNCTIONS.items())]
    return env + wasi


def orders(index: int, args: Sequence[int]) -> bytes:
    return struct.pack("<I4x", index) + b"".join(
        struct.pack("<Q", a & 0xFFFFFFFFFFFFFFFF) for a in args
    )


def caller_guest(funcs: Sequence[Target], *, abi: str = V021, malloc: str | None = None,
                 extra: str = "", head: str = "") -> bytes:
    """A guest importing ``funcs`` (plus what it needs itself) that calls the one it is told to."""
    names: dict[tuple[str, str], str] = {}
    imports = []

    def imp(module: str, name: str, sig: Signature) -> str:
        key = (module, name)
        if key not in names:
            names[key] = f"$h{len(names)}"
            params = " ".join(sig.params)
            results = " ".join(sig.results)
            imports.append(
                f'(import "{module}" "{name}" (func {names[key]}'
                + (f" (param {params})" if params else "")
                + (f" (result {results})" if results else "")
                + "))"
            )
        return names[key]

    get_header = imp("env", "proxy_get_header_map_value", HOST_FUNCTIONS[
        "proxy_get_header_map_value"].signature)
    get_property = imp("env", "proxy_get_property", HOST_FUNCTIONS["proxy_get_property"].signature)
    ids = [imp(m, n, s) for m, n, s in funcs]

    cases = []
    for fid, (_, _, sig) in zip(ids, funcs, strict=True):
        args = " ".join(
            f"({t}.load offset={8 + 8 * k} (local.get $p))" for k, t in enumerate(sig.params)
        )
        call = f"(call {fid} {args})"
        if sig.results:
            cases.append(f"(i32.store (local.get $out) {call})")
        else:
            cases.append(f"{call} (i32.store (local.get $out) (i32.const {NO_RESULT}))")
    n = len(cases)
    labels = " ".join(f"$c{i}" for i in range(n))
    table = f"(br_table {labels} $done (i32.load (local.get $p)))"
    inner = table
    for i in range(n):
        inner = f"(block $c{i} {inner})\n {cases[i]} (br $done)"
    dispatch = f"""
 (func $dispatch (param $p i32) (local $out i32)
   (local.set $out (i32.add (i32.const {STATUS_ADDR})
                            (i32.shl (i32.load (i32.const {CALLS_ADDR})) (i32.const 2))))
   (i32.store (i32.const {CALLS_ADDR}) (i32.add (i32.load (i32.const {CALLS_ADDR})) (i32.const 1)))
   (block $done {inner}))"""
    hdr_params = "(param $c i32) (param $n i32)" + ("" if abi == V010 else " (param $e i32)")
    body = f"""
 {head}
 {" ".join(imports)}
 (global $armed (mut i32) (i32.const 0))
 (data (i32.const 16) "x-fuzz")
 (data (i32.const 24) "fuzz")
 {dispatch}
 (func $obey
   (if (i32.eqz (call {get_property} (i32.const 24) (i32.const 4) (i32.const 0x38)
                                     (i32.const 0x3c)))
     (then (call $dispatch (i32.load (i32.const 0x38))))))
 (func $on_request_headers (export "proxy_on_request_headers") {hdr_params} (result i32)
   (global.set $armed (i32.const 0))
   (i32.store (i32.const 0x34) (i32.const 0))
   (if (i32.eqz (call {get_header} (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 0x30)
                                   (i32.const 0x34)))
     (then (if (i32.load (i32.const 0x34))  ;; 0.1.0 answers OK and "" for a missing header
       (then (global.set $armed (i32.const 1)) (call $obey)))))
   i32.const 0)
 (func $on_request_body (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
   (if (global.get $armed) (then (call $obey)))
   i32.const 0)
 (func $on_context_create (export "proxy_on_context_create") (param i32 i32))
 (func $on_done (export "proxy_on_done") (param i32) (result i32) i32.const 1)
 {malloc or ""}
 {extra}
"""
    abi_marker = abi.replace(".", "_")
    return wat_module(body, abi=abi_marker, alloc=malloc is None)


def streams(n: int = 3, armed: int = 1, body: bool = True,
            response_body: bool = True) -> list[dict[str, Any]]:
    """``n`` sequential HTTP streams; stream ``armed`` carries ``x-fuzz`` (and a request body)."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        port = 40000 + i
        headers = {"a": "b", "x-fuzz": "1"} if i == armed else {"a": "b"}
        req: dict[str, Any] = {
            "sip": "10.0.0.2", "sp": port, "dip": "10.0.0.1", "dp": 80, "method": "POST",
            "uri_path": f"/s{i}", "headers": headers, "forward_direction": True, "delta_ms": 1,
        }
        if body and i == armed:
            req["body"] = "request body"
        out.append(req)
        resp = {"sip": "10.0.0.1", "sp": 80, "dip": "10.0.0.2", "dp": port,
                "headers": {"r": "1"}, "forward_direction": False, "delta_ms": 1}
        if response_body:
            resp["body"] = f"resp{i}"
        out.append(resp)
    return out


def replay_orders(wasm_path: Any, packets: list[dict[str, Any]], order: bytes,
                  **options: Any) -> tuple[Any, tuple[int, ...]]:
    """Replay with the given orders; returns the run and the statuses the guest got, in order."""
    from pwcli.engine import ReplayOptions, Session
    from pwcli.plugin import load_plugin
    from pwcli.trace import parse_trace

    lenient = options.pop("lenient", False)
    props = {"fuzz": order, **options.pop("properties", {})}
    trace = parse_trace(packets, source="fuzz.json")
    session = Session(load_plugin(wasm_path, lenient=lenient),
                      ReplayOptions(properties=props, **options), trace, checked=True)
    session.feed(trace.packets)
    run = session.close()
    if session.instance is None:
        return run, ()
    mem = session.instance.memory
    (calls,) = struct.unpack("<I", mem.read(CALLS_ADDR, 4))
    return run, struct.unpack(f"<{calls}I", mem.read(STATUS_ADDR, 4 * calls))
