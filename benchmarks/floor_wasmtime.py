"""The Wasmtime floor: a minimal binding of the benchmark's own, outside pwcli's layers.

Set-up through wasmtime-py; the measured path through the C API (unchecked host functions, unchecked
guest calls, a memoryview over linear memory). The engine is
configured as pwcli's (fuel, epoch interruption, fixed memory) so the ratio compares like with like.
Two guests loop N times inside one call: over a no-op import, and over a getter-style import that
reads a key, calls the guest allocator, writes the value and stores its pointer and length.
"""

from __future__ import annotations

import ctypes
import struct
import time

import wasmtime
from wasmtime import _ffi as ffi

_lib = ctypes.CDLL(str(ffi.filename))
_call = _lib.wasmtime_func_call_unchecked
_call.restype = ctypes.c_void_p
_caller_context = _lib.wasmtime_caller_context
_caller_context.restype = ctypes.c_void_p
_caller_context.argtypes = (ctypes.c_void_p,)
_CB = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_size_t)
_define = _lib.wasmtime_linker_define_func_unchecked
_define.restype = ctypes.c_void_p
_define.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                    ctypes.c_size_t, ctypes.c_void_p, _CB, ctypes.c_void_p, ctypes.c_void_p)
_memory_data = _lib.wasmtime_memory_data
_memory_data.restype = ctypes.c_void_p
_memory_data.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
_memory_size = _lib.wasmtime_memory_data_size
_memory_size.restype = ctypes.c_size_t
_memory_size.argtypes = (ctypes.c_void_p, ctypes.c_void_p)

WAT = """
(module
  (import "env" "noop" (func $noop (result i32)))
  (import "env" "getter" (func $getter (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "user-agent")
  (func (export "malloc") (param i32) (result i32) i32.const 0x10000)
  (func (export "loop_noop") (param $n i32) (result i32) (local $acc i32)
    (block $done (loop $l
      local.get $n i32.eqz br_if $done
      call $noop local.get $acc i32.add local.set $acc
      local.get $n i32.const 1 i32.sub local.set $n br $l))
    local.get $acc)
  (func (export "loop_getter") (param $n i32) (result i32) (local $acc i32)
    (block $done (loop $l
      local.get $n i32.eqz br_if $done
      (call $getter (i32.const 16) (i32.const 10) (i32.const 32) (i32.const 36))
      local.get $acc i32.add local.set $acc
      local.get $n i32.const 1 i32.sub local.set $n br $l))
    local.get $acc)
  (func (export "nop") (param i32) (result i32) local.get 0))
"""


def measure(n: int = 50_000, repeat: int = 5) -> dict[str, float]:
    """Microseconds per call (best of ``repeat``): guest_call, noop_import, getter_import."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.memory_may_move = False
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    store.set_fuel((1 << 63) - 1)
    store.set_epoch_deadline(1 << 40)
    module = wasmtime.Module(engine, wasmtime.wat2wasm(WAT))
    linker = wasmtime.Linker(engine)
    state: dict[str, object] = {}
    values = {b"user-agent": b"bench/1.0"}
    pack_u32 = struct.Struct("<I").pack_into
    unpack_args = struct.Struct("<I12xI12xI12xI12x").unpack
    string_at = ctypes.string_at
    c_char16 = ctypes.c_char * 16
    keep: list[object] = []

    def noop(env: int, caller: int, args: int, nargs: int) -> int:
        c_char16.from_address(args)[0:4] = b"\0\0\0\0"
        return 0

    def getter(env: int, caller: int, args: int, nargs: int) -> int:
        kp, kl, pp, lp = unpack_args(string_at(args, 64))
        view = state["view"]
        value = values[view[kp:kp + kl].tobytes()]  # type: ignore[index]
        # Re-enter the guest: malloc(len(value)) through the caller's context.
        buf = state["mbuf"]
        struct.pack_into("<I", buf, 0, len(value))  # type: ignore[arg-type]
        trap = ctypes.c_void_p()
        _call(ctypes.c_void_p(_caller_context(caller)), state["malloc"], buf, ctypes.c_size_t(1),
              ctypes.byref(trap))
        ptr = struct.unpack_from("<I", buf, 0)[0]  # type: ignore[arg-type]
        view[ptr:ptr + len(value)] = value  # type: ignore[index]
        pack_u32(view, pp, ptr)
        pack_u32(view, lp, len(value))
        c_char16.from_address(args)[0:4] = b"\0\0\0\0"
        return 0

    for name, fn, params in (("noop", noop, []), ("getter", getter, [wasmtime.ValType.i32()] * 4)):
        cb = _CB(fn)
        keep.append(cb)
        ft = wasmtime.FuncType(params, [wasmtime.ValType.i32()])
        keep.append(ft)
        err = _define(ctypes.cast(linker.ptr(), ctypes.c_void_p), b"env", 3, name.encode(),
                      len(name), ctypes.cast(ft.ptr(), ctypes.c_void_p), cb, None, None)
        assert not err
    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    mem = exports["memory"]
    ctx = ctypes.cast(store._context(), ctypes.c_void_p).value
    mptr = ctypes.byref(mem._memory)  # type: ignore[attr-defined]
    base, size = _memory_data(ctx, mptr), _memory_size(ctx, mptr)
    state["view"] = memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")
    funcs = {k: exports[k] for k in ("malloc", "loop_noop", "loop_getter", "nop")}
    keep.extend(funcs.values())
    state["malloc"] = ctypes.byref(funcs["malloc"]._func)  # type: ignore[attr-defined]
    state["mbuf"] = (ctypes.c_char * 16)()

    def run(name: str, arg: int) -> None:
        buf = (ctypes.c_char * 16)()
        struct.pack_into("<I", buf, 0, arg)
        trap = ctypes.c_void_p()
        err = _call(ctypes.c_void_p(ctx), ctypes.byref(funcs[name]._func), buf,  # type: ignore[attr-defined]
                    ctypes.c_size_t(1), ctypes.byref(trap))
        assert not err and not trap.value, name

    def per_call(name: str, count: int) -> float:
        best = float("inf")
        for _ in range(repeat):
            t = time.thread_time()
            run(name, count)
            best = min(best, time.thread_time() - t)
        return best / count * 1e6

    # Python -> wasm: a loop of single calls to a trivial export (pre-packed arguments).
    nop = ctypes.byref(funcs["nop"]._func)  # type: ignore[attr-defined]
    buf = (ctypes.c_char * 16)()
    trap = ctypes.c_void_p()
    cctx = ctypes.c_void_p(ctx)
    one = ctypes.c_size_t(1)
    tref = ctypes.byref(trap)
    best = float("inf")
    for _ in range(repeat):
        t = time.thread_time()
        for _ in range(n // 5):
            _call(cctx, nop, buf, one, tref)
        best = min(best, time.thread_time() - t)
    guest_call = best / (n // 5) * 1e6
    out = {
        "guest_call": guest_call,
        "noop_import": per_call("loop_noop", n),
        "getter_import": per_call("loop_getter", n),
    }
    assert bytes(state["view"][0x10000:0x10009]) == b"bench/1.0"  # type: ignore[index]
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(measure()))  # argv[1] (the library) is the wheel's: wasmtime-py loads it
