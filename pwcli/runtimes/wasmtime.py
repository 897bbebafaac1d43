"""Wasmtime backend: set-up through wasmtime-py, hot paths through the C API of the wheel's library.

Host functions are unchecked C callbacks (``wasmtime_linker_define_func_unchecked``), guest calls go
through ``wasmtime_func_call_unchecked`` with pre-packed argument buffers, and linear memory is read
and written through a memoryview over the engine's memory (which never moves: ``memory_may_move`` is
off). ``wasmtime._ffi`` is a private module of the wheel: this is the only file that touches it, and
pyproject pins the wasmtime major version.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from ..errors import BackendError, GuestExit, GuestTrap, PluginLoadError
from .base import HostFunction, Limits, RuntimeInfo, ViewMemory

# A second handle on the same library: functions without argtypes, for the hot path.
_lib = ctypes.CDLL(str(ffi.filename))
_call_unchecked = _lib.wasmtime_func_call_unchecked
_call_unchecked.restype = ctypes.c_void_p
_caller_context = _lib.wasmtime_caller_context
_caller_context.restype = ctypes.c_void_p
_caller_context.argtypes = (ctypes.c_void_p,)
_trap_new = _lib.wasmtime_trap_new
_trap_new.restype = ctypes.c_void_p
_trap_new.argtypes = (ctypes.c_char_p, ctypes.c_size_t)
_set_fuel = _lib.wasmtime_context_set_fuel
_set_fuel.restype = ctypes.c_void_p
_set_fuel.argtypes = (ctypes.c_void_p, ctypes.c_uint64)
_get_fuel = _lib.wasmtime_context_get_fuel
_get_fuel.restype = ctypes.c_void_p
_get_fuel.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64))
_memory_data = _lib.wasmtime_memory_data
_memory_data.restype = ctypes.c_void_p
_memory_data.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
_memory_size = _lib.wasmtime_memory_data_size
_memory_size.restype = ctypes.c_size_t
_memory_size.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
_set_deadline = _lib.wasmtime_context_set_epoch_deadline
_set_deadline.restype = None
_set_deadline.argtypes = (ctypes.c_void_p, ctypes.c_uint64)
# Hot-path handles without argtypes: arguments go pre-wrapped (c_void_p, c_uint64, byref).
_fast = ctypes.CDLL(str(ffi.filename))
_fast_set_fuel = _fast.wasmtime_context_set_fuel
_fast_set_fuel.restype = ctypes.c_void_p
_fast_get_fuel = _fast.wasmtime_context_get_fuel
_fast_get_fuel.restype = ctypes.c_void_p
_fast_caller_context = _fast.wasmtime_caller_context
_fast_caller_context.restype = ctypes.c_void_p

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
_CODE = {wasmtime.TrapCode.__members__[k].value: v for k, v in {
    "STACK_OVERFLOW": "stack_overflow",
    "MEMORY_OUT_OF_BOUNDS": "memory_out_of_bounds",
    "HEAP_MISALIGNED": "memory_out_of_bounds",
    "TABLE_OUT_OF_BOUNDS": "table_out_of_bounds",
    "INDIRECT_CALL_TO_NULL": "indirect_call_to_null",
    "BAD_SIGNATURE": "bad_signature",
    "INTEGER_OVERFLOW": "integer_overflow",
    "INTEGER_DIVISION_BY_ZERO": "integer_divide_by_zero",
    "BAD_CONVERSION_TO_INTEGER": "bad_conversion_to_integer",
    "UNREACHABLE": "unreachable",
    "INTERRUPT": "timeout",
    "OUT_OF_FUEL": "timeout",
}.items()}
_VALTYPE = {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64(),
            "f32": wasmtime.ValType.f32(), "f64": wasmtime.ValType.f64()}
_FMT = {"i32": "I12x", "i64": "q8x", "f32": "f12x", "f64": "d8x"}
_MASK = {"i32": 0xFFFFFFFF, "i64": None, "f32": None, "f64": None}
_MAX_FUEL = (1 << 63) - 1
_RESULT_CTYPE = {"i32": ctypes.c_uint32, "i64": ctypes.c_int64, "f32": ctypes.c_float,
                 "f64": ctypes.c_double}


def _args_struct(types: Sequence[str]) -> struct.Struct:
    return struct.Struct("<" + "".join(_FMT[t] for t in types))


class _Watchdog:
    """Interrupts a guest call that overruns its wall-clock guard (epoch interruption)."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self.epoch = 0
        self.deadline: float | None = None
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def arm(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="pwcli-watchdog", daemon=True)
            self.thread.start()

    def disarm(self) -> None:
        self.deadline = None

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            deadline = self.deadline
            if deadline is not None and time.monotonic() > deadline:
                with self.lock:
                    self.epoch += 1
                    self.engine.increment_epoch()
                self.deadline = None


class WasmtimeRuntime:
    name = "wasmtime"

    def __init__(self, *, cache_dir: str | os.PathLike[str] | None = None) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.memory_may_move = False
        config.memory_reservation = 1 << 32
        config.max_wasm_stack = 1 << 20
        config.cranelift_opt_level = "speed"
        self._config_key = "fuel,epoch,nomove,4G,stack1M,speed"
        self.engine = wasmtime.Engine(config)
        self.watchdog = _Watchdog(self.engine)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    @staticmethod
    @functools.cache
    def version() -> str:
        from importlib.metadata import version

        return version("wasmtime")

    def compile(self, wasm: bytes, *, cache: bool = True) -> wasmtime.Module:
        path = self._cache_path(wasm) if cache else None
        if path is not None and path.is_file():
            try:
                return wasmtime.Module.deserialize(self.engine, path.read_bytes())
            except (wasmtime.WasmtimeError, OSError):
                pass
        try:
            module = wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise PluginLoadError(f"the engine refused the module: {_error_text(exc)}") from None
        if path is not None:
            _write_private(path, bytes(module.serialize()))
        return module

    def _cache_path(self, wasm: bytes) -> Path | None:
        root = self.cache_dir or _default_cache_dir()
        if root is None or not _private_dir(root):
            return None
        key = hashlib.sha256(
            wasm + f"|wasmtime {self.version()}|{self._config_key}".encode()
        ).hexdigest()
        return root / f"{key}.cwasm"

    def load(
        self, wasm: bytes, imports: Sequence[HostFunction], *, limits: Limits, cache: bool = True
    ) -> WasmtimeInstance:
        return WasmtimeInstance(self, self.compile(wasm, cache=cache), imports, limits)


class WasmtimeMemory(ViewMemory):
    """Linear memory through a memoryview; it never moves (memory_may_move is off)."""

    __slots__ = ("_inst", "base")

    def __init__(self, inst: WasmtimeInstance) -> None:
        super().__init__()
        self._inst = inst
        self.base = 0

    def refresh(self) -> None:
        inst = self._inst
        ptr = ctypes.byref(inst._memory._memory)
        ctx = inst._context()
        size = _memory_size(ctx, ptr)
        if size != self._size:
            base = _memory_data(ctx, ptr)
            self.base, self._size = base, size
            self.view = memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")

class WasmtimeInstance:
    def __init__(
        self,
        runtime: WasmtimeRuntime,
        module: wasmtime.Module,
        imports: Sequence[HostFunction],
        limits: Limits,
    ) -> None:
        self.runtime = runtime
        self.limits = limits
        self.store = wasmtime.Store(runtime.engine)
        self.store.set_limits(memory_size=limits.max_memory)
        self.store.set_fuel(_MAX_FUEL)
        self.store.set_epoch_deadline(1)
        self._epoch = runtime.watchdog.epoch
        self._store_ctx = ctypes.cast(self.store._context(), ctypes.c_void_p).value
        self._caller: int | None = None
        self._pending: BaseException | None = None
        self._depth = 0
        self._fuel_used = 0
        self._callbacks: list[object] = []  # keep the C trampolines alive
        self.memory = WasmtimeMemory(self)
        linker = wasmtime.Linker(runtime.engine)
        for hf in imports:
            self._define(linker, hf)
        self._funcs: dict[str, tuple[Any, ...]] = {}
        self._has: dict[str, bool] = {}
        self._prepare_calls()
        try:
            self._depth += 1
            self.instance = linker.instantiate(self.store, module)
        except wasmtime.Trap as exc:
            raise self._translate_trap(exc) from None
        except wasmtime.WasmtimeError as exc:
            pending, self._pending = self._pending, None
            if pending is not None:
                raise self._translate_pending(pending) from None
            raise _instantiate_error(exc) from None
        finally:
            self._depth -= 1
        self._exports = self.instance.exports(self.store)
        mem = self._exports.get("memory")
        if not isinstance(mem, wasmtime.Memory):
            raise PluginLoadError("the module exports no linear memory named 'memory'")
        self._memory = mem
        self.memory.refresh()

    # -- host functions ---------------------------------------------------------------------
    def _define(self, linker: wasmtime.Linker, hf: HostFunction) -> None:
        fn = hf.fn
        n = len(hf.params)
        unpack = _args_struct(hf.params).unpack if n else None
        size = 16 * n
        result = hf.results[0] if hf.results else None
        # The result goes in slot 0 of the args-and-results array, through one ctypes scalar.
        out = _RESULT_CTYPE[result].from_address if result else None
        mask = _MASK[result] if result else None
        string_at = ctypes.string_at
        inst = self

        def trampoline(env: int, caller: int, args: int, nargs: int) -> int:
            prev = inst._caller
            inst._caller = caller
            try:
                r = fn(*unpack(string_at(args, size))) if unpack else fn()
                if out is not None:
                    out(args).value = r & mask if mask is not None else r
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised after the guest unwinds
                inst._pending = exc
                msg = str(exc).encode()[:200] or b"host function failed"
                return _trap_new(msg, len(msg)) or 0
            finally:
                inst._caller = prev

        cb = _CALLBACK(trampoline)
        self._callbacks.append(cb)
        ftype = wasmtime.FuncType(
            [_VALTYPE[t] for t in hf.params], [_VALTYPE[t] for t in hf.results]
        )
        mod, name = hf.module.encode(), hf.name.encode()
        err = _define_unchecked(
            ctypes.cast(linker.ptr(), ctypes.c_void_p), mod, len(mod), name, len(name),
            ctypes.cast(ftype.ptr(), ctypes.c_void_p), cb, None, None,
        )
        if err:
            raise BackendError(f"wasmtime refused host function {hf.module}.{hf.name}")

    # -- guest calls ------------------------------------------------------------------------
    def _context(self) -> int:
        if self._caller is not None:
            return _caller_context(self._caller)
        return self._store_ctx

    def has_export(self, name: str) -> bool:
        known = self._has.get(name)
        if known is None:
            known = self._has[name] = isinstance(self._exports.get(name), wasmtime.Func)
        return known

    def _prepare_calls(self) -> None:
        """Everything a guest call needs, wrapped once: the hot path passes these as they are."""
        limits = self.limits
        self._fuel_start = limits.fuel if limits.fuel is not None else _MAX_FUEL
        self._fuel_arg = ctypes.c_uint64(self._fuel_start)
        self._fuel_left = ctypes.c_uint64()
        self._fuel_left_ref = ctypes.byref(self._fuel_left)
        self._ctx_arg = ctypes.c_void_p(self._store_ctx)
        self._wall = limits.wall_seconds

    def _func(self, name: str) -> tuple[Any, ...]:
        entry = self._funcs.get(name)
        if entry is None:
            func = self._exports.get(name)
            if not isinstance(func, wasmtime.Func):
                raise KeyError(name)
            ftype = func.type(self.store)
            params = [str(t) for t in ftype.params]
            results = [str(t) for t in ftype.results]
            slots = max(len(params), len(results), 1)
            entry = (
                ctypes.byref(func._func),
                [],  # one args-and-results buffer per call depth (the allocator re-enters)
                _args_struct(params),
                _args_struct(results[:1]) if results else None,
                ctypes.c_size_t(slots),
                func,  # keeps the export alive
            )
            self._funcs[name] = entry
        return entry

    def _slot(self, entry: tuple[Any, ...], depth: int) -> tuple[Any, Any, Any]:
        """The args-and-results buffer and trap out-slot of one function at one call depth."""
        slots = entry[1]
        while len(slots) <= depth:
            trap = ctypes.c_void_p()
            slots.append(((ctypes.c_char * (16 * entry[4].value))(), trap, ctypes.byref(trap)))
        return slots[depth]

    def call(self, name: str, *args: int) -> int | None:
        entry = self._funcs.get(name)
        if entry is None:
            entry = self._func(name)
        func, slots, argpack, respack, nslots, _ = entry
        depth = self._depth
        try:
            buf, trap, trap_ref = slots[depth]
        except IndexError:
            buf, trap, trap_ref = self._slot(entry, depth)
        if args:
            argpack.pack_into(buf, 0, *args)
        if depth:  # the allocator, re-entered from a host function: the caller's context
            self._depth = depth + 1
            try:
                err = _call_unchecked(_fast_caller_context(self._caller), func, buf,
                                      nslots, trap_ref)
            finally:
                self._depth = depth
        else:
            ctx = self._ctx_arg
            watchdog = self.runtime.watchdog
            if self._epoch != watchdog.epoch:
                self._epoch = watchdog.epoch
                _set_deadline(self._store_ctx, 1)
            _fast_set_fuel(ctx, self._fuel_arg)
            if self._wall is not None:
                watchdog.arm(self._wall)
            self._depth = 1
            try:
                err = _call_unchecked(ctx, func, buf, nslots, trap_ref)
            finally:
                self._depth = 0
                watchdog.deadline = None
                _fast_get_fuel(ctx, self._fuel_left_ref)
                used = self._fuel_start - self._fuel_left.value
                if used > 0:
                    self._fuel_used += used
        if err:
            trap.value = None
            exc = wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))
            pending, self._pending = self._pending, None
            if pending is not None:
                raise self._translate_pending(pending, _error_frames(exc))
            raise GuestTrap("trap", _trap_message(str(exc)), frames=_error_frames(exc))
        if trap.value:
            wtrap = wasmtime.Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(ffi.wasm_trap_t)))
            trap.value = None  # the slot is reused: only a new trap may set it
            pending, self._pending = self._pending, None
            if pending is not None:
                raise self._translate_pending(pending, wtrap)
            raise self._translate_trap(wtrap)
        if respack is None:
            return None
        return respack.unpack_from(buf, 0)[0]

    def _account_fuel(self, ctx: int) -> None:
        left = ctypes.c_uint64()
        _get_fuel(ctx, ctypes.byref(left))
        start = self.limits.fuel if self.limits.fuel is not None else _MAX_FUEL
        self._fuel_used += max(0, start - left.value)

    def fuel_consumed(self) -> int:
        return self._fuel_used

    def _translate_pending(
        self, exc: BaseException, trap: wasmtime.Trap | tuple[str, ...] | None = None
    ) -> BaseException:
        if isinstance(trap, wasmtime.Trap):
            trap = tuple(_frame_text(f) for f in trap.frames)
        frames = trap or ()
        if isinstance(exc, GuestExit):
            return GuestTrap(
                "proc_exit", f"proc_exit({exc.code})", frames=frames, exit_code=exc.code
            )
        if isinstance(exc, GuestTrap) and not exc.frames:
            exc.frames = frames
        return exc  # GuestTrap from a nested call, or a bug in pwcli: keeps its traceback

    def _translate_trap(self, trap: wasmtime.Trap) -> GuestTrap:
        code = trap.trap_code
        kind = _CODE.get(code.value, "trap") if code is not None else "trap"
        message = _trap_message(trap.message) or kind
        out_of_fuel = code is not None and code.value == wasmtime.TrapCode.OUT_OF_FUEL.value
        if out_of_fuel:
            message = f"the per-call budget of {self.limits.fuel} fuel units ran out ({message})"
        elif kind == "timeout":
            message = f"the wall-clock guard of {self.limits.wall_seconds} s ran out ({message})"
        if (kind == "unreachable" or kind == "trap") and hasattr(self, "_memory"):
            # A failed memory.grow under the store limit shows up as the guest's own abort.
            # (No memory yet: the trap came from the start function, during instantiation.)
            if self.memory.size() + 65536 > self.limits.max_memory:
                kind = "memory_limit"
                message = (f"the guest stopped with its memory at the cap of "
                           f"{self.limits.max_memory >> 20} MiB: memory.grow was refused ({message})")
        frames = tuple(_frame_text(f) for f in trap.frames)
        return GuestTrap(kind, message, frames=frames, out_of_fuel=out_of_fuel)


def _frame_text(frame: wasmtime.Frame) -> str:
    name = frame.func_name or f"func[{frame.func_index}]"
    offset = frame.module_offset
    if offset is None or offset >= 0xFFFFFFFF:
        return name
    return f"{name} @ 0x{offset:x}"


def _error_frames(err: wasmtime.WasmtimeError) -> tuple[str, ...]:
    """The wasm backtrace of an error that ended a call (a host function's trap)."""
    from wasmtime._trap import Frame, FrameList

    frames = FrameList(err)
    ffi.wasmtime_error_wasm_trace(err.ptr(), ctypes.byref(frames.vec))
    return tuple(
        _frame_text(Frame._from_ptr(frames.vec.data[i], frames)) for i in range(frames.vec.size)
    )


def _trap_message(text: str | None) -> str:
    """The trap's own words: the line after "Caused by:", without the backtrace wasmtime adds."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    if "Caused by:" in lines:
        rest = lines[lines.index("Caused by:") + 1 :]
        if rest:
            return rest[-1]
    return lines[0] if lines else ""


def _error_text(exc: BaseException) -> str:
    """One line: the error's first line and its deepest cause (the reason), without numbering."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    first, cause = lines[0], lines[-1]
    if cause is first or "Caused by:" not in lines:
        return first
    return f"{first}: {cause.split(': ', 1)[1] if cause[:1].isdigit() else cause}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _instantiate_error(exc: wasmtime.WasmtimeError) -> Exception:
    text = str(exc)
    if "memory" in text and ("limit" in text or "exceeds" in text or "minimum" in text):
        return GuestTrap("memory_limit", _first_line(exc))
    return PluginLoadError(f"the engine could not instantiate the module: {_first_line(exc)}")


def _default_cache_dir() -> Path | None:
    env = os.environ.get("PWCLI_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "pwcli" / "modules"


def _private_dir(path: Path) -> bool:
    """Create the cache directory 0700; only use it when it is ours and nobody else can write."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o077


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def library_path() -> str:
    return str(ffi.filename)


def _describe() -> RuntimeInfo:
    return RuntimeInfo(
        name="wasmtime",
        available=True,
        version=WasmtimeRuntime.version(),
        location=library_path(),
        detail="bundled with the wasmtime wheel (C API)",
        features={"simd": True, "tail_call": True, "bulk_memory": True, "reference_types": True},
    )


WasmtimeRuntime.describe = staticmethod(_describe)  # type: ignore[attr-defined]
