"""Wasmtime backend: set-up through wasmtime-py, hot paths through the C API of the wheel's library.

Host functions are unchecked callbacks and guest calls unchecked calls, and linear memory (which
never moves: ``memory_may_move`` is off) is read and written in place, all through a crossing
(``wasmtime_crossing``: in C when built, else through ctypes and a memoryview).
``wasmtime._ffi`` is a private module of the wheel: only this file and the crossing touch it, and
pyproject pins the wasmtime major version.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import wasmtime
from wasmtime import _ffi as ffi

from .. import native
from ..errors import BackendError, GuestExit, GuestTrap, PluginLoadError
from .base import HostFunction, Limits, OutOfBounds, RuntimeInfo
from .wasmtime_crossing import crossing_class, deadline_class

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
_MAX_FUEL = (1 << 63) - 1


class _Watchdog:
    """Interrupts a guest call that overruns its wall-clock guard (epoch interruption).

    The crossing writes the running call's deadline into ``state``; this thread, woken four times a
    second, adds an epoch to the engine once it has passed (the guest then traps: "timeout")."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self.state = deadline_class()()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="pwcli-watchdog", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        state = self.state
        while True:
            time.sleep(0.25)
            deadline = state.deadline
            if deadline and time.monotonic() > deadline:
                state.epoch += 1
                self.engine.increment_epoch()
                state.deadline = 0.0


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
        store_ctx = ctypes.cast(self.store._context(), ctypes.c_void_p).value
        assert store_ctx is not None
        if limits.wall_seconds is not None:
            runtime.watchdog.start()
        self.crossing = crossing_class()(
            store_ctx, runtime.watchdog.state,
            limits.fuel if limits.fuel is not None else _MAX_FUEL,
            limits.wall_seconds or 0.0, self._on_trap, self._export,
        )
        self.call = self.crossing.call  # call(name, *args): the export's result
        linker = wasmtime.Linker(runtime.engine)
        linker_ptr = ctypes.cast(linker.ptr(), ctypes.c_void_p).value
        for hf in imports:
            ftype = wasmtime.FuncType(
                [_VALTYPE[t] for t in hf.params], [_VALTYPE[t] for t in hf.results]
            )
            try:
                self.crossing.define(linker_ptr, hf.module.encode(), hf.name.encode(),
                                     ctypes.cast(ftype.ptr(), ctypes.c_void_p).value, hf.fn,
                                     hf.params, hf.results)
            except RuntimeError as exc:
                raise BackendError(str(exc)) from None
        self._has: dict[str, bool] = {}
        self._called: list[wasmtime.Func] = []  # exports the crossing calls, kept alive
        self.crossing.enter()  # the start function runs guest code through wasmtime-py
        try:
            self.instance = linker.instantiate(self.store, module)
        except wasmtime.Trap as exc:
            raise self._translate_trap(exc) from None
        except wasmtime.WasmtimeError as exc:
            pending = self.crossing.take_pending()
            if pending is not None:
                raise self._translate_pending(pending) from None
            raise _instantiate_error(exc) from None
        finally:
            self.crossing.leave()
        self._exports = self.instance.exports(self.store)
        mem = self._exports.get("memory")
        if not isinstance(mem, wasmtime.Memory):
            raise PluginLoadError("the module exports no linear memory named 'memory'")
        self._memory = mem
        # From here the crossing is also the instance's Memory (read, write, check, size).
        self.crossing.attach_memory(ctypes.addressof(mem._memory), ctypes.sizeof(mem._memory),
                                    OutOfBounds)
        self.memory = self.crossing

    def has_export(self, name: str) -> bool:
        known = self._has.get(name)
        if known is None:
            known = self._has[name] = isinstance(self._exports.get(name), wasmtime.Func)
        return known

    def _export(self, name: str) -> None:
        """Make export ``name`` callable through the crossing (on its first call)."""
        func = self._exports.get(name)
        if not isinstance(func, wasmtime.Func):
            raise KeyError(name)
        ftype = func.type(self.store)
        self._called.append(func)
        self.crossing.export(name, ctypes.addressof(func._func), [str(t) for t in ftype.params],
                             [str(t) for t in ftype.results])

    def _on_trap(self, is_error: bool, address: int) -> BaseException:
        """The error a guest call ends with: the host function's own, or the trap translated."""
        pending = self.crossing.take_pending()
        if is_error:
            err = wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(address, ctypes.POINTER(ffi.wasmtime_error_t)))
            frames = _error_frames(err)
            if pending is not None:
                return self._translate_pending(pending, frames)
            return GuestTrap("trap", _trap_message(str(err)), frames=frames)
        trap = wasmtime.Trap._from_ptr(ctypes.cast(address, ctypes.POINTER(ffi.wasm_trap_t)))
        if pending is not None:
            return self._translate_pending(pending, trap)
        return self._translate_trap(trap)

    def fuel_consumed(self) -> int:
        return self.crossing.fuel_used  # type: ignore[no-any-return]

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
        detail="bundled with the wasmtime wheel (C API); " + native.describe(),
        features={"simd": True, "tail_call": True, "bulk_memory": True, "reference_types": True},
    )


WasmtimeRuntime.describe = staticmethod(_describe)  # type: ignore[attr-defined]
