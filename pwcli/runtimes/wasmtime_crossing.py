"""The crossings between Python and Wasmtime: host functions in, guest calls out.

Two implementations of one contract, ``Crossing``:

- ``pwcli.runtimes._crossing`` (C, built with pwcli when a compiler is there): host functions are
  unchecked C callbacks calling the Python function with ints; guest calls pack their arguments on
  the C stack.
- ``CtypesCrossing`` below, the same through ctypes: the pure-Python path, used without the C module
  or with ``PWCLI_PURE=1``.

Both reach the wheel's library through the C API (``wasmtime_linker_define_func_unchecked``,
``wasmtime_func_call_unchecked``, fuel and epoch deadlines). Nothing here knows proxy-wasm: the
instance says what to link and call, and turns a trap into an error (``on_trap``).

The contract: ``Crossing(store_context, deadline, fuel, wall, on_trap, on_missing)``;
``define(linker, module, name, functype, fn, params, results)``; ``export(name, func_address,
params, results)``; ``call(name, *args)``; ``context()``; ``enter()`` / ``leave()`` around guest
code run by wasmtime-py (instantiation); ``take_pending()``: the exception a host function raised;
``fuel_used``; ``depth``. Once ``attach_memory(address, struct_size, out_of_bounds)`` has been
given the instance's exported memory, the crossing is also the instance's ``Memory``: ``read``,
``write``, ``write_u32``, ``check``, ``size`` (an access outside raises ``out_of_bounds``).
"""

from __future__ import annotations

import ctypes
import functools
import struct
from collections.abc import Callable, Sequence
from time import monotonic as _monotonic
from typing import Any

from wasmtime import _ffi as ffi

from .. import native
from .base import ViewMemory

_lib = ctypes.CDLL(str(ffi.filename))
_call_unchecked = _lib.wasmtime_func_call_unchecked
_call_unchecked.restype = ctypes.c_void_p
_caller_context = _lib.wasmtime_caller_context
_caller_context.restype = ctypes.c_void_p
_caller_context.argtypes = (ctypes.c_void_p,)
_trap_new = _lib.wasmtime_trap_new
_trap_new.restype = ctypes.c_void_p
_trap_new.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
_set_deadline = _lib.wasmtime_context_set_epoch_deadline
_set_deadline.restype = None
_set_deadline.argtypes = (ctypes.c_void_p, ctypes.c_uint64)
_memory_data = _lib.wasmtime_memory_data
_memory_data.restype = ctypes.c_void_p
_memory_data.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
_memory_size = _lib.wasmtime_memory_data_size
_memory_size.restype = ctypes.c_size_t
_memory_size.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
# Hot-path handles without argtypes: arguments go pre-wrapped (c_void_p, c_uint64, byref).
_fast = ctypes.CDLL(str(ffi.filename))
_fast_set_fuel = _fast.wasmtime_context_set_fuel
_fast_set_fuel.restype = ctypes.c_void_p
_fast_get_fuel = _fast.wasmtime_context_get_fuel
_fast_get_fuel.restype = ctypes.c_void_p
_fast_caller_context = _fast.wasmtime_caller_context


class _CallerPtr(ctypes.c_void_p):
    """The caller argument kept as a ctypes object (a subclass is not converted to int), so a
    re-entering call passes it on without wrapping it again."""


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, _CallerPtr, ctypes.c_void_p, ctypes.c_size_t
)
_fast_caller_context.restype = _CallerPtr  # the caller's context, kept as a ctypes object
_define_unchecked = _lib.wasmtime_linker_define_func_unchecked
_define_unchecked.restype = ctypes.c_void_p
_define_unchecked.argtypes = (
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
    ctypes.c_void_p, _CALLBACK, ctypes.c_void_p, ctypes.c_void_p,
)
_FMT = {"i32": "I12x", "i64": "q8x", "f32": "f12x", "f64": "d8x"}
_MASK = {"i32": 0xFFFFFFFF, "i64": None, "f32": None, "f64": None}
_RESULT_CTYPE = {"i32": ctypes.c_uint32, "i64": ctypes.c_int64, "f32": ctypes.c_float,
                 "f64": ctypes.c_double}


def _args_struct(types: Sequence[str]) -> struct.Struct:
    return struct.Struct("<" + "".join(_FMT[t] for t in types))


class Deadline:
    """The wall-clock guard's state, one per engine: the C module's ``Deadline`` in Python."""

    __slots__ = ("deadline", "epoch")

    def __init__(self) -> None:
        self.deadline = 0.0  # time.monotonic() after which the running call is interrupted; 0: none
        self.epoch = 0  # epochs the watchdog has added to the engine


class _Memory(ViewMemory):
    """Linear memory through a memoryview; it never moves (memory_may_move is off)."""

    __slots__ = ("_crossing", "_extern")

    def __init__(self, crossing: CtypesCrossing, extern: Any) -> None:
        super().__init__()
        self._crossing = crossing
        self._extern = extern

    def refresh(self) -> None:
        ctx = self._crossing.context()
        size = _memory_size(ctx, self._extern)
        if size != self._size:
            base = _memory_data(ctx, self._extern)
            self._size = size
            self.view = memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")


class CtypesCrossing:
    """One instance's crossings through ctypes (see the module's docstring for the contract)."""

    def __init__(self, store_context: int, deadline: Deadline, fuel: int, wall: float,
                 on_trap: Callable[[bool, int], BaseException],
                 on_missing: Callable[[str], None]) -> None:
        self._store_ctx = store_context
        self._deadline = deadline
        self._seen_epoch = deadline.epoch
        self._fuel_start = fuel
        self._fuel_arg = ctypes.c_uint64(fuel)
        self._fuel_left = ctypes.c_uint64()
        self._fuel_left_ref = ctypes.byref(self._fuel_left)
        self._ctx_arg = ctypes.c_void_p(store_context)
        self._wall = wall
        self._on_trap = on_trap
        self._on_missing = on_missing
        self._caller: Any = None
        self._pending: BaseException | None = None
        self._funcs: dict[str, tuple[Any, ...]] = {}
        self._callbacks: list[object] = []  # keep the C trampolines alive
        self.depth = 0
        self.fuel_used = 0

    # -- host functions ---------------------------------------------------------------------
    def define(self, linker: int, module: bytes, name: bytes, functype: int,
               fn: Callable[..., Any], params: Sequence[str], results: Sequence[str]) -> None:
        n = len(params)
        unpack = _args_struct(params).unpack if n else None
        size = 16 * n
        result = results[0] if results else None
        # The result goes in slot 0 of the args-and-results array, through one ctypes scalar.
        out: Any = _RESULT_CTYPE[result].from_address if result else None
        mask = _MASK[result] if result else None
        string_at = ctypes.string_at
        me = self

        def trampoline(env: int, caller: Any, args: int, nargs: int) -> int:
            prev = me._caller
            me._caller = caller
            try:
                r = fn(*unpack(string_at(args, size))) if unpack else fn()
                if out is not None:
                    out(args).value = r & mask if mask is not None else r
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised after the guest unwinds
                me._pending = exc
                msg = str(exc).encode()[:200] or b"host function failed"
                return _trap_new(msg, len(msg)) or 0
            finally:
                me._caller = prev

        cb = _CALLBACK(trampoline)
        self._callbacks.append(cb)
        err = _define_unchecked(linker, module, len(module), name, len(name), functype, cb,
                                None, None)
        if err:
            raise RuntimeError(f"wasmtime refused host function {module.decode()}.{name.decode()}")

    def attach_memory(self, address: int, struct_size: int, out_of_bounds: type) -> None:
        # ViewMemory raises base.OutOfBounds, the only class the instance passes.
        extern = ctypes.c_void_p(address)
        mem = _Memory(self, extern)
        mem.refresh()
        self.read, self.write, self.check = mem.read, mem.write, mem.check
        self.write_u32, self.size = mem.write_u32, mem.size

    def context(self) -> int:
        if self._caller is not None:
            return _caller_context(self._caller)  # type: ignore[no-any-return]
        return self._store_ctx

    def enter(self) -> None:
        self.depth += 1

    def leave(self) -> None:
        self.depth -= 1
        self._caller = None

    def take_pending(self) -> BaseException | None:
        pending, self._pending = self._pending, None
        return pending

    # -- guest calls ------------------------------------------------------------------------
    def export(self, name: str, func_address: int, params: Sequence[str],
               results: Sequence[str]) -> None:
        slots = max(len(params), len(results), 1)
        self._funcs[name] = (
            ctypes.c_void_p(func_address),
            [],  # one args-and-results buffer per call depth (the allocator re-enters)
            _args_struct(params),
            _args_struct(results[:1]) if results else None,
            ctypes.c_size_t(slots),
        )

    def _slot(self, entry: tuple[Any, ...], depth: int) -> tuple[Any, Any, Any]:
        """The args-and-results buffer and trap out-slot of one function at one call depth."""
        slots = entry[1]
        while len(slots) <= depth:
            trap = ctypes.c_void_p()
            slots.append(((ctypes.c_char * (16 * entry[4].value))(), trap, ctypes.byref(trap)))
        return slots[depth]  # type: ignore[no-any-return]

    def call(self, name: str, *args: int) -> int | None:
        entry = self._funcs.get(name)
        if entry is None:
            self._on_missing(name)
            entry = self._funcs[name]
        func, slots, argpack, respack, nslots = entry
        depth = self.depth
        try:
            buf, trap, trap_ref = slots[depth]
        except IndexError:
            buf, trap, trap_ref = self._slot(entry, depth)
        if args:
            argpack.pack_into(buf, 0, *args)
        if depth:  # the allocator, re-entered from a host function: the caller's context
            self.depth = depth + 1
            try:
                err = _call_unchecked(_fast_caller_context(self._caller), func, buf,
                                      nslots, trap_ref)
            finally:
                self.depth = depth
        else:
            ctx = self._ctx_arg
            deadline = self._deadline
            if self._seen_epoch != deadline.epoch:
                self._seen_epoch = deadline.epoch
                _set_deadline(self._store_ctx, 1)
            _fast_set_fuel(ctx, self._fuel_arg)
            if self._wall:
                deadline.deadline = _monotonic() + self._wall
            self.depth = 1
            try:
                err = _call_unchecked(ctx, func, buf, nslots, trap_ref)
            finally:
                self.depth = 0
                deadline.deadline = 0.0
                _fast_get_fuel(ctx, self._fuel_left_ref)
                used = self._fuel_start - self._fuel_left.value
                if used > 0:
                    self.fuel_used += used
        if err:
            trap.value = None
            raise self._on_trap(True, err)
        if trap.value:
            address = trap.value
            trap.value = None  # the slot is reused: only a new trap may set it
            raise self._on_trap(False, address)
        if respack is None:
            return None
        return respack.unpack_from(buf, 0)[0]  # type: ignore[no-any-return]


@functools.cache
def crossing_class() -> type[Any]:
    """The C crossing when it is built and wanted (bound to the wheel's library once), else the
    ctypes one."""
    mod = native.module("pwcli.runtimes._crossing")
    if mod is None:
        return CtypesCrossing
    mod.bind(str(ffi.filename))
    return mod.Crossing  # type: ignore[no-any-return]


def deadline_class() -> type[Any]:
    mod = native.module("pwcli.runtimes._crossing")
    return Deadline if mod is None else mod.Deadline  # type: ignore[no-any-return]
