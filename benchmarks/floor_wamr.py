"""The WAMR floor: a minimal binding of the benchmark's own (wasm_export.h natives through ctypes),
outside pwcli's layers. Run in its own process (the WAMR
runtime is process-global): ``python -m benchmarks.floor_wamr LIBRARY`` prints JSON.

The same guest as floor_wasmtime: loops N times over a no-op import, and over a getter-style import
(``(*~**)i``: WAMR checks the key's pointer and length and hands native pointers) that reads the
key,
calls the guest's malloc, writes the value and stores its pointer and length.
"""

from __future__ import annotations

import ctypes
import json
import sys
import time

import wasmtime  # only for wat2wasm

from benchmarks.floor_wasmtime import WAT

vp, cp, u32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32


class NativeSymbol(ctypes.Structure):
    _fields_ = [("symbol", cp), ("func_ptr", vp), ("signature", cp), ("attachment", vp)]


def measure(library: str, n: int = 50_000, repeat: int = 5) -> dict[str, float]:
    lib = ctypes.CDLL(library)

    def d(name: str, res: object, *args: object) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
        return f

    init = d("wasm_runtime_init", ctypes.c_bool)
    register = d("wasm_runtime_register_natives", ctypes.c_bool, cp,
                 ctypes.POINTER(NativeSymbol), u32)
    load = d("wasm_runtime_load", vp, vp, u32, cp, u32)
    instantiate = d("wasm_runtime_instantiate", vp, vp, u32, u32, cp, u32)
    create_env = d("wasm_runtime_create_exec_env", vp, vp, u32)
    lookup = d("wasm_runtime_lookup_function", vp, vp, cp)
    to_native = d("wasm_runtime_addr_app_to_native", vp, vp, ctypes.c_uint64)
    call = lib.wasm_runtime_call_wasm  # hot: no argtypes, arguments pre-wrapped
    call.restype = ctypes.c_bool
    assert init()

    state: dict[str, object] = {}
    values = {b"user-agent": b"bench/1.0"}
    string_at, memmove = ctypes.string_at, ctypes.memmove
    u32_at = ctypes.c_uint32.from_address

    noop_t = ctypes.CFUNCTYPE(ctypes.c_uint32, vp)
    getter_t = ctypes.CFUNCTYPE(ctypes.c_uint32, vp, vp, ctypes.c_uint32, vp, vp)

    def noop(env: int) -> int:
        return 0

    def getter(env: int, kp: int, kl: int, pp: int, lp: int) -> int:
        value = values[string_at(kp, kl)]
        argv = state["argv"]
        argv[0] = len(value)  # type: ignore[index]
        call(state["env"], state["malloc"], 1, argv)
        off = argv[0]  # type: ignore[index]
        memmove(to_native(state["inst"], off), value, len(value))
        u32_at(pp).value = off
        u32_at(lp).value = len(value)
        return 0

    cbs = [noop_t(noop), getter_t(getter)]
    symbols = (NativeSymbol * 2)(
        NativeSymbol(b"noop", ctypes.cast(cbs[0], vp), b"()i", None),
        NativeSymbol(b"getter", ctypes.cast(cbs[1], vp), b"(*~**)i", None),
    )
    assert register(b"env", symbols, 2)
    wasm = wasmtime.wat2wasm(WAT)
    buf = ctypes.create_string_buffer(bytes(wasm), len(wasm))
    err = ctypes.create_string_buffer(256)
    module = load(buf, len(wasm), err, 256)
    assert module, err.value
    inst = instantiate(module, 64 * 1024, 0, err, 256)
    assert inst, err.value
    env = create_env(inst, 64 * 1024)
    funcs = {k: lookup(inst, k.encode()) for k in ("malloc", "loop_noop", "loop_getter", "nop")}
    state.update(env=vp(env), inst=inst, malloc=vp(funcs["malloc"]), argv=(ctypes.c_uint32 * 2)())

    def run(name: str, arg: int) -> None:
        argv = (ctypes.c_uint32 * 2)(arg)
        assert call(vp(env), vp(funcs[name]), 1, argv), name

    def per_call(name: str, count: int) -> float:
        best = float("inf")
        for _ in range(repeat):
            t = time.thread_time()
            run(name, count)
            best = min(best, time.thread_time() - t)
        return best / count * 1e6

    nop, cenv = vp(funcs["nop"]), vp(env)
    argv = (ctypes.c_uint32 * 2)(1)
    best = float("inf")
    for _ in range(repeat):
        t = time.thread_time()
        for _ in range(n // 5):
            call(cenv, nop, 1, argv)
        best = min(best, time.thread_time() - t)
    out = {"guest_call": best / (n // 5) * 1e6, "noop_import": per_call("loop_noop", n),
           "getter_import": per_call("loop_getter", n)}
    base = to_native(inst, 0x10000)
    assert string_at(base, 9) == b"bench/1.0"
    return out


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
