"""WAMR backend: ``libiwasm`` through ctypes (the ``wasm_export.h`` natives API).

The declarations below are pwcli's own, written against WAMR's public C API. Host functions
are raw natives (``void f(exec_env, uint64_t *args)``, one 64-bit slot per wasm parameter, the
result in slot 0). WAMR's natives are process-global and resolved when a module is loaded:
pwcli registers one native per (module, name, signature), once, and each dispatches to the
instance that owns the calling exec env. Guest calls go through ``wasm_runtime_call_wasm`` with
pre-packed cell buffers.

Units and limits: ``Limits.fuel`` is WAMR's instruction metering (one unit per interpreted
instruction, a fresh budget at every interpreter entry; WAMR does not report what was used, so
``fuel_consumed()`` is 0); ``max_memory`` caps the pages at instantiation; the wall-clock guard
calls ``wasm_runtime_terminate`` from a watchdog thread, which a build without WAMR's thread
manager only notices when the guest next returns from a host call: so while a wall-clock guard
is set and no budget is, pwcli sets an instruction limit as a backstop, ``wall_seconds`` times
300 million (about what the fast interpreter runs per second on a 2020s x86-64 core), at most
2**31-1.
"""

from __future__ import annotations

import ctypes
import re
import struct
import sysconfig
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import BackendError, GuestTrap, PluginLoadError
from .base import HostFunction, Limits, RuntimeInfo, ViewMemory
from .nativelib import (
    PAGE,
    LibrarySpec,
    Watchdog,
    budget_message,
    check_memory_cap,
    feature_error,
    first_line,
    load_library,
    memory_limit_rule,
    missing_imports,
    module_info,
    probe_features,
    translate_pending,
    wall_message,
)

_MULTIARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
SPEC = LibrarySpec(
    runtime="wamr",
    title="the WAMR library libiwasm.so",
    env="PWCLI_WAMR_LIB",
    filename="libiwasm.so",
    find_name="iwasm",
    places=(
        "/usr/local/lib",
        "/usr/lib",
        f"/usr/lib/{_MULTIARCH}",
        "~/.local/lib",
        "/opt/wamr/lib",
    ),
    install=(
        "WAMR's releases ship the iwasm executable, not the library: build libiwasm.so from a "
        "WAMR release's source with CMake (BUILD_SHARED_LIBS=ON; its install step puts it in "
        "/usr/local/lib)"
    ),
)
MIN_VERSION = (2, 0)
INT_MAX = (1 << 31) - 1
BACKSTOP_RATE = 300_000_000  # instructions per wall-clock second, for the backstop
_ERR_LEN = 512
_LETTER = {"i32": "i", "i64": "I", "f32": "f", "f64": "F"}
_SLOT = {"i32": "I4x", "i64": "q", "f32": "f4x", "f64": "d"}  # raw natives: 64-bit slots
_CELL = {"i32": "I", "i64": "q", "f32": "f", "f64": "d"}  # wasm_runtime_call_wasm: 32-bit cells
_CELLS = {"i32": 1, "i64": 2, "f32": 1, "f64": 2}
_OUT = {
    "i32": ctypes.c_uint32,
    "i64": ctypes.c_int64,
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
}
_MASK = {"i32": 0xFFFFFFFF, "i64": None, "f32": None, "f64": None}

vp, u32, i32, u64, cp = (
    ctypes.c_void_p,
    ctypes.c_uint32,
    ctypes.c_int32,
    ctypes.c_uint64,
    ctypes.c_char_p,
)


class NativeSymbol(ctypes.Structure):
    _fields_ = [("symbol", cp), ("func_ptr", vp), ("signature", cp), ("attachment", vp)]


class InstantiationArgs(ctypes.Structure):
    _fields_ = [
        ("default_stack_size", u32),
        ("host_managed_heap_size", u32),
        ("max_memory_pages", u32),
    ]


class ImportType(ctypes.Structure):  # wasm_import_t
    _fields_ = [
        ("module_name", cp),
        ("name", cp),
        ("kind", ctypes.c_int),
        ("linked", ctypes.c_bool),
        ("u", vp),
    ]


_RAW_NATIVE = ctypes.CFUNCTYPE(None, vp, vp)

# Trap words -> canonical kinds (messages come as "Exception: <words>").
_KINDS = (
    ("unreachable", "unreachable"),
    ("out of bounds memory access", "memory_out_of_bounds"),
    ("integer divide by zero", "integer_divide_by_zero"),
    ("integer overflow", "integer_overflow"),
    ("invalid conversion to integer", "bad_conversion_to_integer"),
    ("stack overflow", "stack_overflow"),
    ("undefined element", "table_out_of_bounds"),
    ("out of bounds table access", "table_out_of_bounds"),
    ("uninitialized element", "indirect_call_to_null"),
    ("null function reference", "indirect_call_to_null"),
    ("indirect call type mismatch", "bad_signature"),
    ("instruction limit exceeded", "timeout"),
    ("terminated by user", "timeout"),
)


def _classify(message: str) -> str:
    for words, kind in _KINDS:
        if words in message:
            return kind
    return "trap"


def _words(raw: bytes | None) -> str:
    text = (raw or b"").decode("utf-8", "replace")
    return text[len("Exception: ") :] if text.startswith("Exception: ") else text


class _Api:
    """One loaded libiwasm: declarations, the runtime (initialised once), the natives registry."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.lib, self.path = lib, path
        self.version = self._version()
        if self.version[:2] < MIN_VERSION:
            raise BackendError(
                f"runtime 'wamr': {path} is WAMR {'.'.join(map(str, self.version))}; pwcli needs "
                f"WAMR >= {'.'.join(map(str, MIN_VERSION))}"
            )
        d = self._decl
        self.init = d("wasm_runtime_init", ctypes.c_bool)
        self.set_log_level = d("wasm_runtime_set_log_level", None, ctypes.c_int)
        self.register_raw = d(
            "wasm_runtime_register_natives_raw",
            ctypes.c_bool,
            cp,
            ctypes.POINTER(NativeSymbol),
            u32,
        )
        self.unregister = d(
            "wasm_runtime_unregister_natives", ctypes.c_bool, cp, ctypes.POINTER(NativeSymbol)
        )
        self.load = d("wasm_runtime_load", vp, vp, u32, cp, u32)
        self.unload = d("wasm_runtime_unload", None, vp)
        self.import_count = d("wasm_runtime_get_import_count", i32, vp)
        self.import_type = d(
            "wasm_runtime_get_import_type", None, vp, i32, ctypes.POINTER(ImportType)
        )
        self.instantiate_ex = d(
            "wasm_runtime_instantiate_ex", vp, vp, ctypes.POINTER(InstantiationArgs), cp, u32
        )
        self.deinstantiate = d("wasm_runtime_deinstantiate", None, vp)
        self.create_exec_env = d("wasm_runtime_create_exec_env", vp, vp, u32)
        self.destroy_exec_env = d("wasm_runtime_destroy_exec_env", None, vp)
        self.lookup_function = d("wasm_runtime_lookup_function", vp, vp, cp)
        self.lookup_memory = d("wasm_runtime_lookup_memory", vp, vp, cp)
        self.module_inst = d("wasm_runtime_get_module_inst", vp, vp)
        self.set_exception = d("wasm_runtime_set_exception", None, vp, cp)
        self.terminate = d("wasm_runtime_terminate", None, vp)
        self.mem_bytes_per_page = d("wasm_memory_get_bytes_per_page", u64, vp)
        self.set_limit = (
            d("wasm_runtime_set_instruction_count_limit", None, vp, ctypes.c_int)
            if hasattr(lib, "wasm_runtime_set_instruction_count_limit")
            else None
        )
        self.has_stack_dump = hasattr(lib, "wasm_runtime_dump_call_stack_to_buf")
        if self.has_stack_dump:
            self.stack_size = d("wasm_runtime_get_call_stack_buf_size", u32, vp)
            self.stack_dump = d("wasm_runtime_dump_call_stack_to_buf", u32, vp, cp, u32)
        # The hot path: a second handle whose functions have no argtypes (arguments go pre-wrapped).
        hot = ctypes.CDLL(path)
        self.call_wasm = hot.wasm_runtime_call_wasm
        self.call_wasm.restype = ctypes.c_bool
        self.get_exception = hot.wasm_runtime_get_exception
        self.get_exception.restype = cp
        self.clear_exception = hot.wasm_runtime_clear_exception
        self.clear_exception.restype = None
        self.mem_pages = hot.wasm_memory_get_cur_page_count
        self.mem_pages.restype = u64
        self.mem_base = hot.wasm_memory_get_base_address
        self.mem_base.restype = vp
        # The runtime: once per process (never destroyed: instances may outlive any owner).
        before = _segv_handler()
        if not self.init():
            raise BackendError(f"runtime 'wamr': wasm_runtime_init failed ({path})")
        self.hw_bounds = _segv_handler() != before  # hardware bounds checks install a handler
        self.set_log_level(1)  # errors only: pwcli reports unlinked imports itself
        self.lock = threading.Lock()
        self.natives: dict[tuple[str, str], tuple[str, Any]] = {}
        self.keep: list[Any] = []  # WAMR keeps pointers to every array, string and trampoline
        self.by_env: dict[int, WamrInstance] = {}
        self.loading: WamrInstance | None = None
        self._features: dict[str, bool] | None = None

    def _decl(self, name: str, restype: Any, *argtypes: Any) -> Any:
        fn = getattr(self.lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
        return fn

    def _version(self) -> tuple[int, int, int]:
        if not hasattr(self.lib, "wasm_runtime_get_version"):
            return (1, 0, 0)  # older than 2.0: no version function
        v = [u32(), u32(), u32()]
        self._decl("wasm_runtime_get_version", None, *[ctypes.POINTER(u32)] * 3)(
            *[ctypes.byref(x) for x in v]
        )
        return (v[0].value, v[1].value, v[2].value)

    # -- natives ----------------------------------------------------------------------------
    def ensure_native(self, hf: HostFunction) -> None:
        """Register (once) the raw native that dispatches ``hf.module``.``hf.name`` per instance."""
        sig = (
            "("
            + "".join(_LETTER[t] for t in hf.params)
            + ")"
            + "".join(_LETTER[t] for t in hf.results[:1])
        )
        key = (hf.module, hf.name)
        with self.lock:
            known = self.natives.get(key)
            if known is not None and known[0] == sig:
                return
            if known is not None:  # same name, another signature: the newest registration only
                self.unregister(*known[1])
            modname = ctypes.create_string_buffer(hf.module.encode())
            cb = _RAW_NATIVE(self._trampoline(key, hf.params, hf.results))
            symbol = ctypes.create_string_buffer(hf.name.encode())
            signature = ctypes.create_string_buffer(sig.encode())
            array = (NativeSymbol * 1)(
                NativeSymbol(
                    ctypes.cast(symbol, cp), ctypes.cast(cb, vp), ctypes.cast(signature, cp), None
                )
            )
            if not self.register_raw(modname, array, 1):
                raise BackendError(f"WAMR refused host function {hf.module}.{hf.name}")
            self.keep.extend((modname, cb, symbol, signature, array))
            self.natives[key] = (sig, (modname, array))

    def _trampoline(
        self, key: tuple[str, str], params: Sequence[str], results: Sequence[str]
    ) -> Callable[[int, int], None]:
        size = 8 * len(params)
        unpack = struct.Struct("<" + "".join(_SLOT[t] for t in params)).unpack if params else None
        result = results[0] if results else None
        out = _OUT[result].from_address if result else None
        mask = _MASK[result] if result else None
        string_at = ctypes.string_at
        by_env = self.by_env
        api = self

        def trampoline(env: int, args: int) -> None:
            owner = by_env.get(env) or api.loading
            if owner is None:
                return
            owner.memory.stale = True
            try:
                fn = owner.fns[key]
                r = fn(*unpack(string_at(args, size))) if unpack else fn()
                if out is not None:
                    out(args).value = r & mask if mask is not None else r  # type: ignore
            except BaseException as exc:  # noqa: BLE001 - re-raised once the guest has unwound
                owner.pending = exc
                msg = str(exc).encode("utf-8", "replace")[:200] or b"host function failed"
                api.set_exception(api.module_inst(env), msg.replace(b"\0", b" "))

        return trampoline

    # -- features ---------------------------------------------------------------------------
    def features(self) -> dict[str, bool]:
        if self._features is None:
            found = probe_features(self._probe)
            found["instruction_metering"] = self.set_limit is not None
            found["call_stack"] = self.has_stack_dump
            found["hw_bounds_checks"] = self.hw_bounds
            found["wall_clock_interrupt"] = hasattr(self.lib, "wasm_runtime_spawn_exec_env")
            self._features = found
        return self._features

    def _probe(self, wasm: bytes) -> int | None:
        err = ctypes.create_string_buffer(_ERR_LEN)
        buf = ctypes.create_string_buffer(wasm, len(wasm))
        module = self.load(buf, len(wasm), err, _ERR_LEN)
        if not module:
            return None
        try:
            args = InstantiationArgs(64 * 1024, 0, 0)
            inst = self.instantiate_ex(module, ctypes.byref(args), err, _ERR_LEN)
            if not inst:
                return None
            env = self.create_exec_env(inst, 64 * 1024)
            try:
                func = self.lookup_function(inst, b"f")
                cells = (u32 * 2)()
                if not func or not self.call_wasm(vp(env), vp(func), 0, cells):
                    return None
                return int(cells[0])
            finally:
                self.destroy_exec_env(env)
                self.deinstantiate(inst)
        finally:
            self.unload(module)

    def build_hint(self, feature: str) -> str:
        option = {
            "simd": "WAMR_BUILD_SIMD=1",
            "tail_call": "WAMR_BUILD_TAIL_CALL=1",
            "bulk_memory": "WAMR_BUILD_BULK_MEMORY=1",
            "reference_types": "WAMR_BUILD_REF_TYPES=1",
            "extended_const": "WAMR_BUILD_EXTENDED_CONST_EXPR=1",
            "threads": "threads are not supported by pwcli",
        }.get(feature)
        if option is None or "=" not in option:
            return option or "not supported by this build"
        return f"build WAMR with {option}"


def _segv_handler() -> int | None:
    """The process's current SIGSEGV handler (struct sigaction starts with the handler pointer)."""
    try:
        libc = ctypes.CDLL(None)
        buf = ctypes.create_string_buffer(256)
        if libc.sigaction(11, None, buf) != 0:
            return None
        return ctypes.c_void_p.from_buffer(buf).value
    except (OSError, AttributeError):
        return None


_APIS: dict[str, _Api] = {}
_APIS_LOCK = threading.Lock()


def _api() -> _Api:
    with _APIS_LOCK:
        return load_library(SPEC, _Api, _APIS)


class WamrRuntime:
    name = "wamr"

    def __init__(self, *, cache_dir: Any = None) -> None:
        del cache_dir  # an interpreter: nothing to cache
        self.api = _api()
        self.watchdog = Watchdog()

    def version(self) -> str:
        return ".".join(map(str, self.api.version))

    @staticmethod
    def describe() -> RuntimeInfo:
        try:
            api = _api()
        except BackendError as exc:
            return RuntimeInfo(name="wamr", available=False, detail=str(exc))
        features = api.features()
        bounds = "hardware" if api.hw_bounds else "software"
        metering = (
            "instruction metering: one fuel unit per instruction, per call"
            if features["instruction_metering"]
            else "no instruction metering (--budget is not enforced; build with "
            "WAMR_BUILD_INSTRUCTION_METERING=1)"
        )
        faulthandler = (
            "out-of-bounds traps use a SIGSEGV handler: do not enable faulthandler "
            "(pytest -p no:faulthandler)"
            if api.hw_bounds
            else "safe with faulthandler"
        )
        return RuntimeInfo(
            name="wamr",
            available=True,
            version=".".join(map(str, api.version)),
            location=api.path,
            detail=f"interpreter via ctypes; {bounds} bounds checks ({faulthandler}); {metering}",
            features=features,
        )

    def load(
        self, wasm: bytes, imports: Sequence[HostFunction], *, limits: Limits, cache: bool = True
    ) -> WamrInstance:
        del cache
        return WamrInstance(self, wasm, imports, limits)


class WamrMemory(ViewMemory):
    """Linear memory through a memoryview over WAMR's buffer. The buffer moves when the guest grows
    memory (software bounds checks reallocate it): any guest code may have run once ``stale`` is
    set (a host call entered, a guest call returned), and the page count tells whether it grew."""

    __slots__ = ("_api", "mem", "_pages", "_page_bytes")

    def __init__(self, api: _Api) -> None:
        super().__init__()
        self._api = api
        self.mem: Any = None
        self._pages = -1
        self._page_bytes = PAGE
        self.stale = True

    def bind(self, mem: int) -> None:
        self.mem = vp(mem)
        self._pages = -1
        # Not always 64 KiB: WAMR turns the memory of a module without memory.grow into one page.
        self._page_bytes = int(self._api.mem_bytes_per_page(mem))
        self.refresh()

    def refresh(self) -> None:
        self.stale = False
        if self.mem is None:
            return
        pages = self._api.mem_pages(self.mem)
        if pages != self._pages:
            size = pages * self._page_bytes
            base = self._api.mem_base(self.mem)
            self._pages, self._size = pages, size
            self.view = (
                memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")
                if size and base
                else memoryview(b"")
            )

class WamrInstance:
    def __init__(
        self, runtime: WamrRuntime, wasm: bytes, imports: Sequence[HostFunction], limits: Limits
    ) -> None:
        api = self.api = runtime.api
        self.runtime = runtime
        self.limits = limits
        self.info = info = module_info(wasm)
        self.fns: dict[tuple[str, str], Callable[..., int | None]] = {
            (hf.module, hf.name): hf.fn for hf in imports
        }
        self.pending: BaseException | None = None
        self.memory = WamrMemory(api)
        self._depth = 0
        self._funcs: dict[str, tuple[Any, ...]] = {}
        self._module = self._inst = self._env = None
        missing_imports(info, set(self.fns))
        cap = check_memory_cap(info, limits.max_memory)
        for hf in imports:
            api.ensure_native(hf)
        err = ctypes.create_string_buffer(_ERR_LEN)
        self._wasm = ctypes.create_string_buffer(
            bytes(wasm), len(wasm)
        )  # WAMR keeps pointing into it
        module = api.load(self._wasm, len(wasm), err, _ERR_LEN)
        if not module:
            raise feature_error(
                "WAMR", err.value.decode("utf-8", "replace"), api.features(), api.build_hint
            )
        self._module = module
        self._finalizer = weakref.finalize(self, _release, api, module, None, None, self._wasm)
        self._check_linked()
        args = InstantiationArgs(limits.stack, 0, min(max(cap, 1), 65536))
        with api.lock:
            prev, api.loading = api.loading, self
        self._depth += 1
        try:
            inst = api.instantiate_ex(module, ctypes.byref(args), err, _ERR_LEN)
        finally:
            self._depth -= 1
            api.loading = prev
        if not inst:
            pending, self.pending = self.pending, None
            if pending is not None:
                raise translate_pending(pending) from None
            text = err.value.decode("utf-8", "replace")
            if "Exception:" in text:  # the start function trapped
                words = text.split("Exception:", 1)[1].strip()
                raise GuestTrap(_classify(words), words)
            raise PluginLoadError(
                f"the engine could not instantiate the module: {first_line(text)}"
            )
        env = api.create_exec_env(inst, limits.stack)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _release, api, module, inst, env, self._wasm)
        if not env:
            raise BackendError("WAMR could not create an execution environment")
        self._inst, self._env = vp(inst), vp(env)
        api.by_env[env] = self
        self._env_key = env
        mem = api.lookup_memory(inst, b"memory")
        if not mem or not info.export("memory"):
            raise PluginLoadError("the module exports no linear memory named 'memory'")
        self.memory.bind(mem)
        self._budget(limits)

    def _check_linked(self) -> None:
        api = self.api
        it = ImportType()
        for i in range(api.import_count(self._module)):
            api.import_type(self._module, i, ctypes.byref(it))
            if it.kind == 0 and not it.linked:
                mod, name = (it.module_name or b"").decode(), (it.name or b"").decode()
                raise PluginLoadError(
                    f"the engine could not instantiate the module: unknown import: "
                    f"`{mod}::{name}` has not been defined (WAMR did not link it)"
                )

    def _budget(self, limits: Limits) -> None:
        """The instruction limit: the budget, else (with a wall-clock guard) the backstop."""
        self._fuel_is_budget = limits.fuel is not None
        if self.api.set_limit is None:
            self._limit = None
            return
        if limits.fuel is not None:
            self._limit = min(limits.fuel, INT_MAX)
        elif limits.wall_seconds is not None:
            self._limit = max(1, min(int(limits.wall_seconds * BACKSTOP_RATE), INT_MAX))
        else:
            self._limit = -1
        self.api.set_limit(self._env, self._limit)

    # -- guest calls ------------------------------------------------------------------------
    def has_export(self, name: str) -> bool:
        return self.info.func_export(name) is not None

    def _func(self, name: str) -> tuple[Any, ...]:
        ftype = self.info.func_export(name)
        func = self.api.lookup_function(self._inst, name.encode()) if ftype is not None else None
        if not func or ftype is None:
            raise KeyError(name)
        pcells = sum(_CELLS[t] for t in ftype.params)
        rcells = sum(_CELLS[t] for t in ftype.results)
        entry: tuple[Any, ...] = (
            vp(func),
            [],  # one cell buffer per call depth (the allocator re-enters)
            struct.Struct("<" + "".join(_CELL[t] for t in ftype.params)),
            struct.Struct("<" + _CELL[ftype.results[0]]) if ftype.results else None,
            pcells,
            max(pcells, rcells, 1),
        )
        self._funcs[name] = entry
        return entry

    def call(self, name: str, *args: int) -> int | None:
        entry = self._funcs.get(name)
        if entry is None:
            entry = self._func(name)
        func, bufs, argpack, respack, argc, ncells = entry
        depth = self._depth
        while len(bufs) <= depth:
            bufs.append((u32 * ncells)())
        buf = bufs[depth]
        if args:
            argpack.pack_into(buf, 0, *args)
        api = self.api
        watchdog = self.runtime.watchdog
        wall = self.limits.wall_seconds
        if not depth and wall is not None:
            watchdog.arm(wall, self._terminate)
        self._depth = depth + 1
        try:
            ok = api.call_wasm(self._env, func, argc, buf)
        finally:
            self._depth = depth
            self.memory.stale = True
            fired = watchdog.disarm() if not depth and wall is not None else False
        if ok:
            if fired:  # the guard went off after the guest had finished: not a trap
                api.clear_exception(self._inst)
            return respack.unpack_from(buf, 0)[0] if respack is not None else None
        raise self._failure(fired)

    def _terminate(self) -> None:
        self.api.terminate(self._inst)

    def _failure(self, fired: bool) -> BaseException:
        api = self.api
        words = _words(api.get_exception(self._inst))
        frames = self._frames()
        api.clear_exception(self._inst)
        pending, self.pending = self.pending, None
        if pending is not None:
            return translate_pending(pending, frames)
        kind = _classify(words)
        out_of_fuel = False
        if words.startswith("instruction limit exceeded"):
            if self._fuel_is_budget:
                out_of_fuel = True
                words = budget_message(self.limits.fuel, "WAMR instruction metering", words)
            else:
                words = wall_message(
                    self.limits.wall_seconds,
                    f"{words}: this WAMR build cannot interrupt a running guest, so the guard is "
                    f"an instruction limit of {self._limit}",
                )
        elif kind == "timeout" or fired:
            kind, words = "timeout", wall_message(self.limits.wall_seconds, words)
        kind, words = memory_limit_rule(kind, words, self.memory.size(), self.limits.max_memory)
        return GuestTrap(kind, words, frames=frames, out_of_fuel=out_of_fuel)

    def _frames(self) -> tuple[str, ...]:
        api = self.api
        if not api.has_stack_dump:
            return ()
        n = api.stack_size(self._env)
        if not n:
            return ()
        buf = ctypes.create_string_buffer(n + 1)
        api.stack_dump(self._env, buf, n + 1)
        frames = []
        for line in buf.value.decode("utf-8", "replace").splitlines():
            m = re.match(r"#\d+: 0x([0-9a-fA-F]+) - (\S+)", line.strip())
            if not m:
                continue
            name = m.group(2)
            if re.fullmatch(r"\$f\d+", name):
                name = f"func[{name[2:]}]"
            frames.append(f"{name} @ 0x{int(m.group(1), 16):x}")
        return tuple(frames)

    def fuel_consumed(self) -> int:
        return 0  # WAMR's instruction metering does not report what was used


def _release(api: _Api, module: Any, inst: Any, env: Any, wasm: Any) -> None:
    del wasm  # kept alive until the module is unloaded
    if env:
        api.by_env.pop(env, None)
        api.destroy_exec_env(env)
    if inst:
        api.deinstantiate(inst)
    if module:
        api.unload(module)
