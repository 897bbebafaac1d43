"""The WasmEdge floor: a minimal binding of the benchmark's own (the C API through ctypes),
outside pwcli's layers.
``python -m benchmarks.floor_wasmedge LIBRARY`` prints JSON. The same guest as floor_wasmtime
(a no-op import, a getter-style import).

WasmEdge_Value is 32 bytes (a 128-bit value, then an 8-byte type), laid out by hand; WasmEdge_String
and WasmEdge_Result are small structs passed by value.
"""

from __future__ import annotations

import ctypes
import json
import struct
import sys
import time

import wasmtime  # only for wat2wasm

from benchmarks.floor_wasmtime import WAT

vp, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
VALUE = 32


class String(ctypes.Structure):
    _fields_ = [("length", u32), ("buf", ctypes.c_char_p)]


def _s(text: bytes) -> String:
    return String(len(text), text)


class _Frame(ctypes.c_void_p):
    """The calling frame, kept as a ctypes object (passed on without re-wrapping)."""


HOSTFN = ctypes.CFUNCTYPE(u32, vp, _Frame, vp, vp)


def measure(library: str, n: int = 50_000, repeat: int = 5) -> dict[str, float]:
    lib = ctypes.CDLL(library)

    def d(name: str, res: object, *args: object) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
        return f

    d("WasmEdge_LogOff", None)()
    i32 = d("WasmEdge_ValTypeGenI32", u64)()
    conf = d("WasmEdge_ConfigureCreate", vp)()
    store = d("WasmEdge_StoreCreate", vp)()
    loader = d("WasmEdge_LoaderCreate", vp, vp)(conf)
    validator = d("WasmEdge_ValidatorCreate", vp, vp)(conf)
    executor = d("WasmEdge_ExecutorCreate", vp, vp, vp)(conf, None)
    module = d("WasmEdge_ModuleInstanceCreate", vp, String)(_s(b"env"))
    ftype = d("WasmEdge_FunctionTypeCreate", vp, ctypes.POINTER(u64), u32, ctypes.POINTER(u64), u32)
    fcreate = d("WasmEdge_FunctionInstanceCreate", vp, vp, HOSTFN, vp, u64)
    add = d("WasmEdge_ModuleInstanceAddFunction", None, vp, String, vp)
    find = d("WasmEdge_ModuleInstanceFindFunction", vp, vp, String)
    mem_ptr = d("WasmEdge_MemoryInstanceGetPointer", vp, vp, u32, u32)
    find_mem = d("WasmEdge_ModuleInstanceFindMemory", vp, vp, String)
    # Hot: a second handle, no argtypes (the frame goes in as the c_void_p it arrives as).
    hot = ctypes.CDLL(library)
    frame_mem = hot.WasmEdge_CallingFrameGetMemoryInstance
    frame_mem.restype = vp
    frame_exec = hot.WasmEdge_CallingFrameGetExecutor
    frame_exec.restype = vp
    hot_ptr = hot.WasmEdge_MemoryInstanceGetPointer
    hot_ptr.restype = ctypes.c_size_t
    invoke = lib.WasmEdge_ExecutorInvoke  # hot: no argtypes, arguments pre-wrapped
    invoke.restype = u32

    state: dict[str, object] = {}
    values = {b"user-agent": b"bench/1.0"}
    unpack4 = struct.Struct("<I28xI28xI28xI28x").unpack
    string_at, memmove = ctypes.string_at, ctypes.memmove
    u32_at = ctypes.c_uint32.from_address
    ret_type = struct.Struct("<I12xQ").pack_into  # an i32 result and its type word

    def set_ret(returns: int, value: int) -> None:
        ret_type((ctypes.c_char * VALUE).from_address(returns), 0, value, i32)

    def noop(data: int, frame: int, params: int, returns: int) -> int:
        set_ret(returns, 0)
        return 0

    def getter(data: int, frame: int, params: int, returns: int) -> int:
        kp, kl, pp, lp = unpack4(string_at(params, 4 * VALUE))
        mem = vp(frame_mem(frame, 0))
        value = values[string_at(hot_ptr(mem, kp, kl), kl)]
        args, res = state["margs"], state["mres"]
        struct.pack_into("<I12xQ", args, 0, len(value), i32)  # type: ignore[arg-type]
        invoke(vp(frame_exec(frame)), state["malloc"], args, 1, res, 1)
        off = struct.unpack_from("<I", res)[0]  # type: ignore[arg-type]
        memmove(hot_ptr(mem, off, len(value)), value, len(value))
        u32_at(hot_ptr(mem, pp, 4)).value = off
        u32_at(hot_ptr(mem, lp, 4)).value = len(value)
        set_ret(returns, 0)
        return 0

    keep: list[object] = []
    for name, fn, nparams in ((b"noop", noop, 0), (b"getter", getter, 4)):
        params = (u64 * max(nparams, 1))(*([i32] * nparams))
        results = (u64 * 1)(i32)
        ft = ftype(params, nparams, results, 1)
        cb = HOSTFN(fn)
        keep += [params, results, cb]
        add(module, _s(name), fcreate(ft, cb, None, 0))
    assert d("WasmEdge_ExecutorRegisterImport", u32, vp, vp, vp)(executor, store, module) == 0
    wasm = bytes(wasmtime.wat2wasm(WAT))
    ast = vp()
    assert d("WasmEdge_LoaderParseFromBuffer", u32, vp, ctypes.POINTER(vp), ctypes.c_char_p, u32)(
        loader, ctypes.byref(ast), wasm, len(wasm)) == 0
    assert d("WasmEdge_ValidatorValidate", u32, vp, vp)(validator, ast) == 0
    inst = vp()
    assert d("WasmEdge_ExecutorInstantiate", u32, vp, ctypes.POINTER(vp), vp, vp)(
        executor, ctypes.byref(inst), store, ast) == 0
    names = ("malloc", "loop_noop", "loop_getter", "nop")
    funcs = {k: vp(find(inst, _s(k.encode()))) for k in names}
    state.update(malloc=funcs["malloc"], margs=(ctypes.c_char * VALUE)(),
                 mres=(ctypes.c_char * VALUE)())
    cexec = vp(executor)

    def call(name: str, arg: int) -> None:
        args, res = (ctypes.c_char * VALUE)(), (ctypes.c_char * VALUE)()
        struct.pack_into("<I12xQ", args, 0, arg, i32)
        assert invoke(cexec, funcs[name], args, 1, res, 1) == 0, name

    def per_call(name: str, count: int) -> float:
        best = float("inf")
        for _ in range(repeat):
            t = time.thread_time()
            call(name, count)
            best = min(best, time.thread_time() - t)
        return best / count * 1e6

    args, res = (ctypes.c_char * VALUE)(), (ctypes.c_char * VALUE)()
    struct.pack_into("<I12xQ", args, 0, 1, i32)
    nop = funcs["nop"]
    best = float("inf")
    for _ in range(repeat):
        t = time.thread_time()
        for _ in range(n // 5):
            invoke(cexec, nop, args, 1, res, 1)
        best = min(best, time.thread_time() - t)
    out = {"guest_call": best / (n // 5) * 1e6, "noop_import": per_call("loop_noop", n),
           "getter_import": per_call("loop_getter", n)}
    memory = find_mem(inst, _s(b"memory"))
    assert ctypes.string_at(mem_ptr(memory, 0x10000, 9), 9) == b"bench/1.0"
    return out


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
