"""WAT guests for the host-function tests, and the one pattern they all use to report back.

A ``Guest`` is built from callback bodies written in WAT. Host functions are referred to by their
import names (``$proxy_get_header_map_value``, ``$fd_write``...): the builder declares exactly the
imports a body uses, with the signatures of ``pwcli.host.spec``. Strings go into a data segment with
``g.s("text")``, which expands to ``(i32.const ptr) (i32.const len)``.

The tape: a guest records what it saw by appending to a tape at ``TAPE`` in its own memory:
``(call $st X)`` records an i32 (a status, usually), ``(call $put ptr len)`` records the bytes at
``ptr`` (what the host wrote at an out-address), ``(call $putp pp sp)`` records the bytes that a
``**data, *size`` out-pair points at. ``OUT`` is scratch space for out-params, filled with 0xAA by
``(call $z)`` so that "the host wrote nothing" and "the host wrote 0" differ. ``(call $r2 STATUS)``
records a status and then, if it is OK, the bytes the pair at ``PP`` points at, else the raw 8 bytes
at ``OUT`` (0xAA each when the host left them alone). After the replay the
test reads the tape straight from guest memory: ``Result.tape`` is a list of ints and bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime

from pwcli.host.spec import CALLBACKS, HOST_FUNCTIONS, WASI_FUNCTIONS, Signature
from pwcli.plugin import load_plugin
from pwcli.engine import ReplayOptions, Run, Session
from pwcli.trace import parse_trace

from ..conftest import SEED_PACKETS

OUT = 0x100  # scratch out-params: OUT .. OUT+0x100
STRINGS = 0x1000  # data segment for g.s()
TAPE = 0x8000  # the tape: tagged records up to HEAP
HEAP = 0x10000  # the bump allocator hands out memory from here
FILL = b"\xaa" * 4  # what $z writes into OUT: "untouched"

_TAG_INT, _TAG_BYTES = 1, 2

_HELPERS = f"""
(global $tp (mut i32) (i32.const {TAPE}))
(func $st (param $v i32)
  (i32.store (global.get $tp) (i32.const {_TAG_INT}))
  (i32.store offset=4 (global.get $tp) (local.get $v))
  (global.set $tp (i32.add (global.get $tp) (i32.const 8))))
(func $put (param $p i32) (param $n i32) (local $i i32)
  (i32.store (global.get $tp) (i32.const {_TAG_BYTES}))
  (i32.store offset=4 (global.get $tp) (local.get $n))
  (block $done (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (i32.store8 offset=8 (i32.add (global.get $tp) (local.get $i))
                (i32.load8_u (i32.add (local.get $p) (local.get $i))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
  (global.set $tp (i32.add (global.get $tp)
    (i32.and (i32.add (local.get $n) (i32.const 11)) (i32.const -4)))))
(func $putp (param $pp i32) (param $sp i32)
  (call $put (i32.load (local.get $pp)) (i32.load (local.get $sp))))
(func $r2 (param $s i32)
  (call $st (local.get $s))
  (if (i32.eqz (local.get $s))
    (then (call $putp (i32.const {OUT}) (i32.const {OUT + 4})))
    (else (call $put (i32.const {OUT}) (i32.const 8)))))
(func $z (local $i i32)
  (block $done (loop $next
    (br_if $done (i32.ge_u (local.get $i) (i32.const 0x100)))
    (i32.store8 (i32.add (i32.const {OUT}) (local.get $i)) (i32.const 0xaa))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next))))
"""
_HELPER_NAMES = {"st", "put", "putp", "z", "r2", "tp", "heap"}
PP = f"(i32.const {OUT}) (i32.const {OUT + 4})"  # a **data, *size out-pair at OUT
O = f"(i32.const {OUT})"  # a scalar out-param at OUT

_BUMP = f"""
(global $heap (mut i32) (i32.const {HEAP}))
(func $malloc (export "malloc") (param $n i32) (result i32) (local $p i32)
  {{before}}
  (local.set $p (global.get $heap))
  (global.set $heap (i32.add (global.get $heap) (local.get $n)))
  (local.get $p))
"""


def u32(v: int) -> bytes:
    return struct.pack("<I", v & 0xFFFFFFFF)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def i64(v: int) -> bytes:
    return struct.pack("<q", v)


def pairs(*items: tuple[str | bytes, str | bytes]) -> bytes:
    """The serialized pairs format, written independently of pwcli.host.codec."""
    bs = [(_b(n), _b(v)) for n, v in items]
    out = u32(len(bs))
    for n, v in bs:
        out += u32(len(n)) + u32(len(v))
    for n, v in bs:
        out += n + b"\0" + v + b"\0"
    return out


def _b(x: str | bytes) -> bytes:
    return x.encode() if isinstance(x, str) else x


def _wat_sig(sig: Signature) -> str:
    p = f"(param {' '.join(sig.params)})" if sig.params else ""
    r = f"(result {' '.join(sig.results)})" if sig.results else ""
    return f"{p} {r}"


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{c:02x}" for c in data)


@dataclass
class Result:
    run: Run
    tape: list[Any]
    session: Session

    def read(self, ptr: int, size: int) -> bytes:
        return self.session.instance.memory.read(ptr, size)

    def calls(self, name: str) -> list[Any]:
        return [e for e in self.run.events if e.kind == "hostcall" and e.name == name]

    def callbacks(self, name: str | None = None) -> list[Any]:
        """(name, args) of every callback called, or the args of each call of ``name``."""
        evs = [e for e in self.run.events if e.kind == "callback"]
        if name is not None:
            return [e.args for e in evs if e.name == name]
        return [(e.name, e.args) for e in evs]

    def logs(self) -> list[tuple[str, str]]:
        return [(e.name, e.args["message"]) for e in self.run.events if e.kind == "log"]

    def notes(self, name: str | None = None) -> list[Any]:
        return [e for e in self.run.events if e.kind == "note" and (name is None or e.name == name)]


class Guest:
    """A proxy-wasm module in WAT; ``abi`` is "0.1.0", "0.2.0" or "0.2.1"."""

    def __init__(
        self,
        abi: str = "0.2.1",
        *,
        pages: int = 4,
        malloc: str | None = "",
        wasi: str = "wasi_snapshot_preview1",
        marker: bool = True,
    ) -> None:
        self.abi = abi
        self.pages = pages
        self.malloc = malloc  # None: no malloc export; else WAT run first inside malloc
        self.wasi = wasi
        self.marker = marker
        self.funcs: list[str] = []
        self.strings: dict[bytes, int] = {}
        self.next_string = STRINGS

    # -- building ---------------------------------------------------------------------------
    def addr(self, text: str | bytes) -> int:
        data = _b(text)
        if data not in self.strings:
            self.strings[data] = self.next_string
            self.next_string += (len(data) + 8) & ~7
            assert self.next_string < TAPE, "strings overflow into the tape"
        return self.strings[data]

    def s(self, text: str | bytes) -> str:
        """``(i32.const ptr) (i32.const len)`` of a string in the data segment."""
        return f"(i32.const {self.addr(text)}) (i32.const {len(_b(text))})"

    def on(self, callback: str, body: str = "", ret: int | None = 0) -> Guest:
        """Export ``callback`` with the signature of this ABI version. Parameters are $p0, $p1...
        When the callback returns a value and ``ret`` is not None, ``(i32.const ret)`` ends it."""
        sig = CALLBACKS[self.abi][callback].signature
        params = " ".join(f"(param $p{i} {t})" for i, t in enumerate(sig.params))
        result = f"(result {' '.join(sig.results)})" if sig.results else ""
        tail = f"(i32.const {ret})" if sig.results and ret is not None else ""
        self.funcs.append(f'(func (export "{callback}") {params} {result}\n{body}\n{tail})')
        return self

    def func(self, wat: str) -> Guest:
        self.funcs.append(wat)
        return self

    def wat(self) -> str:
        code = "\n".join(self.funcs)
        if self.malloc is not None:
            code += _BUMP.replace("{before}", self.malloc)
        used = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", code)) - _HELPER_NAMES
        imports = []
        for name in sorted(used):
            if name in HOST_FUNCTIONS:
                imports.append(
                    f'(import "env" "{name}" (func ${name} {_wat_sig(HOST_FUNCTIONS[name].signature)}))'
                )
            elif name in WASI_FUNCTIONS:
                imports.append(
                    f'(import "{self.wasi}" "{name}" (func ${name} {_wat_sig(WASI_FUNCTIONS[name])}))'
                )
        data = "\n".join(
            f'(data (i32.const {a}) "{_wat_bytes(d)}")' for d, a in self.strings.items()
        )
        marker = f'(func (export "proxy_abi_version_{self.abi.replace(".", "_")}"))' if self.marker else ""
        return "\n".join([
            "(module", *imports, f'(memory (export "memory") {self.pages})', _HELPERS, code, data,
            marker, ")",
        ])

    def wasm(self) -> bytes:
        return wasmtime.wat2wasm(self.wat())

    # -- running ----------------------------------------------------------------------------
    def run(
        self,
        tmp_path: Path,
        packets: list[dict[str, Any]] | dict[str, Any] | None = None,
        *,
        runtime: str = "wasmtime",
        lenient: bool = False,
        abi: str | None = None,
        **options: Any,
    ) -> Result:
        path = tmp_path / "guest.wasm"
        path.write_bytes(self.wasm())
        trace = parse_trace(SEED_PACKETS if packets is None else packets, source="test.json")
        plugin = load_plugin(path, lenient=lenient, abi=abi)
        # Host-call tests see the trace's headers as written (the headers Envoy adds are pinned
        # by the presentation and Envoy tests).
        options.setdefault("envoy_headers", False)
        s = Session(plugin, ReplayOptions(runtime=runtime, **options), trace, checked=True)
        s.feed(trace.packets)
        run = s.close()
        tape = read_tape(s.instance.memory) if s.instance is not None else []
        return Result(run, tape, s)


def read_tape(memory: Any) -> list[Any]:
    out: list[Any] = []
    pos = TAPE
    while pos < HEAP:
        tag, value = struct.unpack("<II", memory.read(pos, 8))
        if tag == _TAG_INT:
            out.append(value)
            pos += 8
        elif tag == _TAG_BYTES:
            out.append(memory.read(pos + 8, value))
            pos += 8 + ((value + 3) & ~3)
        else:
            break
    return out


# Two-packet HTTP traces used throughout: request (headers, optional body) then response.
def http(
    req_headers: Any = None,
    resp_headers: Any = None,
    *,
    req_body: str | None = None,
    resp_body: str | None = "Hello World!",
    **extra: Any,
) -> list[dict[str, Any]]:
    req: dict[str, Any] = {
        "sip": "10.0.0.2", "sp": 50124, "dip": "10.0.0.1", "dp": 443, "scheme": "https",
        "uri_path": "/p", "method": "GET", "forward_direction": True,
        "headers": req_headers if req_headers is not None else {"h1": "v1", "User-Agent": "ua/1"},
    }
    if req_body is not None:
        req["body"] = req_body
    resp: dict[str, Any] = {
        "sip": "10.0.0.1", "sp": 443, "dip": "10.0.0.2", "dp": 50124, "forward_direction": False,
        "delta_ms": 5, "headers": resp_headers if resp_headers is not None else {"rh1": "rv1"},
    }
    if resp_body is not None:
        resp["body"] = resp_body
    req.update(extra)
    return [req, resp]
