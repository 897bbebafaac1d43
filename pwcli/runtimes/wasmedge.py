"""WasmEdge backend: ``libwasmedge`` (its C API) through ctypes, interpreter mode.

The declarations below are pwcli's own, written against WasmEdge's public C API (0.14 or later:
``WasmEdge_ValType`` is an 8-byte struct there, returned in a register, so it is a ``c_uint64``
here; ``WasmEdge_Value`` is 32 bytes, a 128-bit value and a type word, laid out by hand; every
``WasmEdge_Result`` is a ``c_uint32``). Each instance has its own configure, statistics, executor
and store, and one host module per import module name whose functions close over the instance.

Units and limits: ``Limits.fuel`` is WasmEdge's cost limit with the default cost table (one unit
per executed instruction; the statistics are cleared at each top-level call, so the budget covers
the call and everything it re-enters, as on wasmtime; ``fuel_consumed()`` sums the costs);
``max_memory`` is the configure's page cap; the wall-clock guard lowers the cost limit to 0 from a
watchdog thread, which stops the guest at its next instruction. WasmEdge's interpreter has no
call-depth limit (its frames live on the heap), so pwcli adds one: the module is rewritten to count
its call depth (pwcli.runtimes.depth; ``Limits.stack // 128`` nested calls, 8192 for 1 MiB) and an
overflow is a ``stack_overflow`` trap as on the other engines.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
import struct
import sysconfig
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import BackendError, GuestTrap, PluginLoadError
from .base import HostFunction, Limits, RuntimeInfo, ViewMemory
from .depth import DEPTH_EXPORT, RESET_EXPORT, instrument
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
    runtime="wasmedge",
    title="the WasmEdge library libwasmedge.so",
    env="PWCLI_WASMEDGE_LIB",
    filename="libwasmedge.so",
    find_name="wasmedge",
    places=(
        "~/.wasmedge/lib",
        "~/.wasmedge/lib64",
        "/usr/local/lib",
        "/usr/lib",
        f"/usr/lib/{_MULTIARCH}",
    ),
    install=(
        "install WasmEdge with its official installer (install.sh, from WasmEdge's "
        "releases; it puts the library in ~/.wasmedge/lib) or unpack a WasmEdge release archive"
    ),
)
MIN_VERSION = (0, 14)
U64_MAX = (1 << 64) - 1
_VALUE = 32  # sizeof(WasmEdge_Value)
_PROPOSALS = {
    "bulk_memory": 4,
    "reference_types": 5,
    "simd": 6,
    "tail_call": 7,
    "extended_const": 8,
    "multi_value": 3,
    "sign_ext": 2,
}
_CODES = {
    0x404: "integer_divide_by_zero",
    0x405: "integer_overflow",
    0x406: "bad_conversion_to_integer",
    0x407: "table_out_of_bounds",
    0x408: "memory_out_of_bounds",
    0x40A: "unreachable",
    0x40B: "indirect_call_to_null",
    0x40C: "table_out_of_bounds",
    0x40D: "bad_signature",
    0x413: "indirect_call_to_null",
    0x003: "timeout",
    0x007: "timeout",
}
_SCALAR = {
    "i32": ctypes.c_uint32,
    "i64": ctypes.c_int64,
    "f32": ctypes.c_float,
    "f64": ctypes.c_double,
}
_MASK = {"i32": 0xFFFFFFFF, "i64": None, "f32": None, "f64": None}
_UNPACK = {"i32": "I28x", "i64": "q24x", "f32": "f28x", "f64": "d24x"}

vp, u32, u64, cp = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_char_p


class WasmEdgeString(ctypes.Structure):  # passed and returned by value
    _fields_ = [("length", u32), ("buf", vp)]


class LogMessage(ctypes.Structure):
    _fields_ = [
        ("message", WasmEdgeString),
        ("logger", WasmEdgeString),
        ("level", ctypes.c_int),
        ("time", ctypes.c_int64),
        ("thread", u64),
    ]


_HOSTFN = ctypes.CFUNCTYPE(u32, vp, vp, vp, vp)
_LOGFN = ctypes.CFUNCTYPE(None, ctypes.POINTER(LogMessage))


class _Api:
    """One loaded libwasmedge: declarations, value-type words, the captured log."""

    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.lib, self.path = lib, path
        d = self._decl
        try:
            self.version_text = d("WasmEdge_VersionGet", cp)().decode()
            version = (
                d("WasmEdge_VersionGetMajor", u32)(),
                d("WasmEdge_VersionGetMinor", u32)(),
                d("WasmEdge_VersionGetPatch", u32)(),
            )
        except AttributeError as exc:
            raise BackendError(
                f"runtime 'wasmedge': {path} is not a WasmEdge library ({exc})"
            ) from None
        self.version = version
        if version[:2] < MIN_VERSION:
            raise BackendError(
                f"runtime 'wasmedge': {path} is WasmEdge {self.version_text}; pwcli needs WasmEdge "
                f">= {'.'.join(map(str, MIN_VERSION))} (its C API changed the value types there)"
            )
        S = WasmEdgeString
        self.log_set_level = d("WasmEdge_LogSetLevel", None, ctypes.c_int)
        self.log_set_callback = d("WasmEdge_LogSetCallback", None, _LOGFN)
        self.result_message = d("WasmEdge_ResultGetMessage", cp, u32)
        types = {
            t: d(f"WasmEdge_ValTypeGen{t.upper()}", u64)() for t in ("i32", "i64", "f32", "f64")
        }
        self.types = types
        self.conf_create = d("WasmEdge_ConfigureCreate", vp)
        self.conf_delete = d("WasmEdge_ConfigureDelete", None, vp)
        self.conf_has = d("WasmEdge_ConfigureHasProposal", ctypes.c_bool, vp, ctypes.c_int)
        self.conf_max_pages = d("WasmEdge_ConfigureSetMaxMemoryPage", None, vp, u64)
        self.conf_cost = d("WasmEdge_ConfigureStatisticsSetCostMeasuring", None, vp, ctypes.c_bool)
        self.stat_create = d("WasmEdge_StatisticsCreate", vp)
        self.stat_delete = d("WasmEdge_StatisticsDelete", None, vp)
        self.stat_limit = d("WasmEdge_StatisticsSetCostLimit", None, vp, u64)
        self.loader_create = d("WasmEdge_LoaderCreate", vp, vp)
        self.loader_delete = d("WasmEdge_LoaderDelete", None, vp)
        self.parse = d("WasmEdge_LoaderParseFromBuffer", u32, vp, ctypes.POINTER(vp), cp, u32)
        self.validator_create = d("WasmEdge_ValidatorCreate", vp, vp)
        self.validator_delete = d("WasmEdge_ValidatorDelete", None, vp)
        self.validate = d("WasmEdge_ValidatorValidate", u32, vp, vp)
        self.executor_create = d("WasmEdge_ExecutorCreate", vp, vp, vp)
        self.executor_delete = d("WasmEdge_ExecutorDelete", None, vp)
        self.register_import = d("WasmEdge_ExecutorRegisterImport", u32, vp, vp, vp)
        self.instantiate = d("WasmEdge_ExecutorInstantiate", u32, vp, ctypes.POINTER(vp), vp, vp)
        self.store_create = d("WasmEdge_StoreCreate", vp)
        self.store_delete = d("WasmEdge_StoreDelete", None, vp)
        self.ast_delete = d("WasmEdge_ASTModuleDelete", None, vp)
        self.module_create = d("WasmEdge_ModuleInstanceCreate", vp, S)
        self.module_delete = d("WasmEdge_ModuleInstanceDelete", None, vp)
        self.add_function = d("WasmEdge_ModuleInstanceAddFunction", u32, vp, S, vp)
        self.find_function = d("WasmEdge_ModuleInstanceFindFunction", vp, vp, S)
        self.find_memory = d("WasmEdge_ModuleInstanceFindMemory", vp, vp, S)
        self.functype_create = d(
            "WasmEdge_FunctionTypeCreate", vp, ctypes.POINTER(u64), u32, ctypes.POINTER(u64), u32
        )
        self.functype_delete = d("WasmEdge_FunctionTypeDelete", None, vp)
        self.function_create = d("WasmEdge_FunctionInstanceCreate", vp, vp, _HOSTFN, vp, u64)
        self.mem_pointer = d("WasmEdge_MemoryInstanceGetPointer", vp, vp, u64, u64)
        # The hot path: a second handle whose functions have no argtypes (arguments go pre-wrapped).
        hot = ctypes.CDLL(path)
        self.invoke = hot.WasmEdge_ExecutorInvoke
        self.invoke.restype = u32
        self.stat_clear = hot.WasmEdge_StatisticsClear
        self.stat_clear.restype = None
        self.stat_cost = hot.WasmEdge_StatisticsGetTotalCost
        self.stat_cost.restype = u64
        self.mem_pages = hot.WasmEdge_MemoryInstanceGetPageSize  # a page COUNT
        self.mem_pages.restype = u64
        # Errors go to a list pwcli reads after a failure, not to stderr.
        self.log: list[str] = []
        self._log_cb = _LOGFN(self._on_log)
        self.log_set_callback(self._log_cb)
        self.log_set_level(4)  # Error
        self._features: dict[str, bool] | None = None

    def _decl(self, name: str, restype: Any, *argtypes: Any) -> Any:
        fn = getattr(self.lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
        return fn

    def _on_log(self, msg: Any) -> None:
        try:
            m = msg.contents.message
            if len(self.log) < 200:
                self.log.append(ctypes.string_at(m.buf, m.length).decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001,S110 - a log line is never worth a crash
            pass

    @staticmethod
    def string(text: str) -> tuple[WasmEdgeString, Any]:
        raw = text.encode()
        buf = ctypes.create_string_buffer(raw, len(raw) or 1)
        return WasmEdgeString(len(raw), ctypes.cast(buf, vp)), buf

    def message(self, code: int) -> str:
        raw = self.result_message(code)
        return raw.decode("utf-8", "replace") if raw else f"error 0x{code:x}"

    # -- features ---------------------------------------------------------------------------
    def features(self) -> dict[str, bool]:
        if self._features is None:
            conf = self.conf_create()
            try:
                enabled = {k: bool(self.conf_has(conf, v)) for k, v in _PROPOSALS.items()}
            finally:
                self.conf_delete(conf)
            found = probe_features(self._probe)
            found = {k: found.get(k, False) and enabled.get(k, True) for k in found}
            found["instruction_metering"] = True  # statistics: cost measuring and cost limit
            found["wall_clock_interrupt"] = True
            self._features = found
        return self._features

    def _probe(self, wasm: bytes) -> int | None:
        engine = _Engine(self, Limits(fuel=10_000, max_memory=1 << 20, wall_seconds=None))
        try:
            inst = engine.instantiate(wasm, ())
            name, keep = self.string("f")
            func = self.find_function(inst, name)
            if not func:
                return None
            out = (ctypes.c_char * (2 * _VALUE))()
            ret = (ctypes.addressof(out) + 15) & ~15
            code = self.invoke(vp(engine.executor), vp(func), None, 0, vp(ret), 1)
            return None if code else ctypes.c_int32.from_address(ret).value
        except (PluginLoadError, GuestTrap, _InstantiateFailed):
            return None
        finally:
            engine.close()

    def build_hint(self, feature: str) -> str:
        return f"WasmEdge has the {feature} proposal switched off or does not implement it"


_APIS: dict[str, _Api] = {}
_APIS_LOCK = threading.Lock()
_INSTRUMENTED: dict[tuple[bytes, int], bytes | None] = {}  # (sha256, limit) -> module, last few


def _with_depth_limit(wasm: bytes, limit: int) -> bytes | None:
    key = (hashlib.sha256(wasm).digest(), limit)
    if key not in _INSTRUMENTED:
        if len(_INSTRUMENTED) >= 8:
            _INSTRUMENTED.pop(next(iter(_INSTRUMENTED)))
        _INSTRUMENTED[key] = instrument(wasm, limit)
    return _INSTRUMENTED[key]


def _api() -> _Api:
    with _APIS_LOCK:
        return load_library(SPEC, _Api, _APIS)


class _Engine:
    """Configure, statistics, loader, validator, executor and store of one instance."""

    def __init__(self, api: _Api, limits: Limits, max_pages: int | None = None) -> None:
        self.api = api
        self.conf = api.conf_create()
        if max_pages is not None:
            api.conf_max_pages(self.conf, max_pages)
        api.conf_cost(self.conf, True)
        self.stat = api.stat_create()
        self.loader = api.loader_create(self.conf)
        self.validator = api.validator_create(self.conf)
        self.executor = api.executor_create(self.conf, self.stat)
        self.store = api.store_create()
        # After ExecutorCreate: it overwrites the statistics' limit with the configure's.
        self.limit = limits.fuel if limits.fuel is not None else U64_MAX
        api.stat_limit(self.stat, self.limit)
        self.hosts: list[int] = []
        self.inst: int | None = None
        self.keep: list[Any] = []

    def instantiate(
        self,
        wasm: bytes,
        hosts: Sequence[tuple[str, Sequence[tuple[HostFunction, Any]]]],
        features: Callable[[], dict[str, bool]] | None = None,
    ) -> int:
        api = self.api
        for module, funcs in hosts:
            name, buf = api.string(module)
            mod = api.module_create(name)
            self.hosts.append(mod)
            for hf, cb in funcs:
                params = (u64 * max(len(hf.params), 1))(*[api.types[t] for t in hf.params])
                results = (u64 * max(len(hf.results), 1))(*[api.types[t] for t in hf.results])
                ftype = api.functype_create(params, len(hf.params), results, len(hf.results))
                func = api.function_create(ftype, cb, None, 0)
                api.functype_delete(ftype)
                fname, fbuf = api.string(hf.name)
                if not func or api.add_function(mod, fname, func):
                    raise BackendError(f"WasmEdge refused host function {hf.module}.{hf.name}")
            code = api.register_import(self.executor, self.store, mod)
            if code:
                raise BackendError(
                    f"WasmEdge refused the host module {module!r}: {api.message(code)}"
                )
        ast = vp()
        del api.log[:]
        data = bytes(wasm)
        code = api.parse(self.loader, ctypes.byref(ast), data, len(data))
        try:
            if not code:
                code = api.validate(self.validator, ast)
            if code:
                text = "; ".join([api.message(code), *api.log[:3]])
                if features is None:
                    raise PluginLoadError(text)
                raise feature_error("WasmEdge", text, features(), api.build_hint)
            inst = vp()
            code = api.instantiate(self.executor, ctypes.byref(inst), self.store, ast)
        finally:
            if ast.value:
                api.ast_delete(ast)
        if code:
            self.failed_code = code
            raise _InstantiateFailed(code)
        self.inst = inst.value
        return int(inst.value or 0)

    def close(self) -> None:
        api = self.api
        if self.inst:
            api.module_delete(self.inst)
            self.inst = None
        for mod in self.hosts:
            api.module_delete(mod)
        self.hosts = []
        if self.executor:
            api.executor_delete(self.executor)
            api.validator_delete(self.validator)
            api.loader_delete(self.loader)
            api.store_delete(self.store)
            api.stat_delete(self.stat)
            api.conf_delete(self.conf)
            self.executor = None


class _InstantiateFailed(Exception):  # noqa: N818
    def __init__(self, code: int) -> None:
        self.code = code


class WasmEdgeRuntime:
    name = "wasmedge"

    def __init__(self, *, cache_dir: Any = None) -> None:
        del cache_dir  # an interpreter: nothing to cache
        self.api = _api()
        self.watchdog = Watchdog()

    def version(self) -> str:
        return self.api.version_text

    @staticmethod
    def describe() -> RuntimeInfo:
        try:
            api = _api()
        except BackendError as exc:
            return RuntimeInfo(name="wasmedge", available=False, detail=str(exc))
        return RuntimeInfo(
            name="wasmedge",
            available=True,
            version=api.version_text,
            location=api.path,
            detail=(
                "interpreter via ctypes; budget = cost limit (one unit per instruction); "
                "call-depth limit added by pwcli (Limits.stack // 128 nested calls); "
                "safe with faulthandler"
            ),
            features=api.features(),
        )

    def load(
        self, wasm: bytes, imports: Sequence[HostFunction], *, limits: Limits, cache: bool = True
    ) -> WasmEdgeInstance:
        del cache
        return WasmEdgeInstance(self, wasm, imports, limits)


class WasmEdgeMemory(ViewMemory):
    """Linear memory through a memoryview. WasmEdge reserves each memory's address space up front,
    so the base never moves; the size is re-read only when an access goes past the known end."""

    __slots__ = ("_api", "mem", "_pages")

    def __init__(self, api: _Api, mem: int) -> None:
        super().__init__()
        self._api = api
        self.mem = vp(mem)
        self._pages = -1
        self.refresh()

    def refresh(self) -> None:
        pages = self._api.mem_pages(self.mem)
        if pages != self._pages:
            size = pages * PAGE
            base = self._api.mem_pointer(self.mem, 0, size) if size else None
            self._pages, self._size = pages, size
            self.view = (
                memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")
                if base
                else memoryview(b"")
            )

class WasmEdgeInstance:
    def __init__(
        self, runtime: WasmEdgeRuntime, wasm: bytes, imports: Sequence[HostFunction], limits: Limits
    ) -> None:
        api = self.api = runtime.api
        self.runtime = runtime
        self.limits = limits
        self.info = info = module_info(wasm)
        self.pending: BaseException | None = None
        self._depth = 0
        self._fuel_used = 0
        self._funcs: dict[str, tuple[Any, ...]] = {}
        missing_imports(info, {(hf.module, hf.name) for hf in imports})
        cap = check_memory_cap(info, limits.max_memory)
        self._engine = engine = _Engine(api, limits, min(max(cap, 1), 65536))
        self._finalizer = weakref.finalize(self, engine.close)
        self._callbacks: list[Any] = []
        grouped: dict[str, list[tuple[HostFunction, Any]]] = {}
        for hf in imports:
            cb = _HOSTFN(self._trampoline(hf))
            self._callbacks.append(cb)
            grouped.setdefault(hf.module, []).append((hf, cb))
        self._depth_limit: int | None = max(limits.stack // 128, 64)
        code = _with_depth_limit(bytes(wasm), self._depth_limit)
        if code is None:  # a module the rewriter does not know: no depth limit
            self._depth_limit, code = None, bytes(wasm)
        self._depth += 1
        try:
            inst = engine.instantiate(code, list(grouped.items()), api.features)
        except _InstantiateFailed as exc:
            pending, self.pending = self.pending, None
            if pending is not None:
                raise translate_pending(pending) from None
            raise self._instantiate_error(exc.code) from None
        finally:
            self._depth -= 1
        self._inst = inst
        self._code = code  # for mapping trap offsets to functions
        self._imported_funcs = sum(1 for i in info.imports if i.kind == "func")
        self._executor = vp(engine.executor)
        self._stat = vp(engine.stat)
        name, keep = api.string("memory")
        mem = api.find_memory(inst, name)
        if not mem:
            raise PluginLoadError("the module exports no linear memory named 'memory'")
        self.memory = WasmEdgeMemory(api, mem)

    def _instantiate_error(self, code: int) -> Exception:
        api = self.api
        text = "; ".join([api.message(code), *api.log[:3]])
        kind = _CODES.get(code & 0xFFFFFF) if code >> 24 == 0 else None
        if kind is not None:  # the start function trapped
            return GuestTrap(kind, api.message(code))
        return PluginLoadError(f"the engine could not instantiate the module: {first_line(text)}")

    def _trampoline(self, hf: HostFunction) -> Callable[[int, int, int, int], int]:
        fn = hf.fn
        n = len(hf.params)
        size = _VALUE * n
        unpack = struct.Struct("<" + "".join(_UNPACK[t] for t in hf.params)).unpack
        result = hf.results[0] if hf.results else None
        out = _SCALAR[result].from_address if result else None
        mask = _MASK[result] if result else None
        type_word = self.api.types[result] if result else 0
        word_at = ctypes.c_uint64.from_address
        string_at = ctypes.string_at
        inst = self

        def trampoline(data: int, frame: int, params: int, returns: int) -> int:
            try:
                r = fn(*unpack(string_at(params, size))) if n else fn()
                if out is not None:
                    out(returns).value = r & mask if mask is not None else r  # type: ignore
                    word_at(returns + 16).value = type_word
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised once the guest has unwound
                inst.pending = exc
                return 2  # Fail

        return trampoline

    # -- guest calls ------------------------------------------------------------------------
    def has_export(self, name: str) -> bool:
        return self.info.func_export(name) is not None

    def _func(self, name: str) -> tuple[Any, ...]:
        ftype = self.info.func_export(name)
        fname, keep = self.api.string(name)
        func = self.api.find_function(self._inst, fname) if ftype is not None else None
        if not func or ftype is None:
            raise KeyError(name)
        entry: tuple[Any, ...] = (
            vp(func),
            [],
            ftype.params,
            ftype.results,
            len(ftype.params),
            len(ftype.results),
        )
        self._funcs[name] = entry
        return entry

    def _buffers(self, params: Sequence[str], results: Sequence[str]) -> tuple[Any, ...]:
        """Params and returns arrays for one call depth, 16-byte aligned, type words filled in."""
        n = max(len(params), 1) + max(len(results), 1)
        raw = (ctypes.c_char * (_VALUE * n + 16))()
        base = (ctypes.addressof(raw) + 15) & ~15
        ret = base + _VALUE * max(len(params), 1)
        slots = []
        for i, t in enumerate(params):
            ctypes.c_uint64.from_address(base + _VALUE * i + 16).value = self.api.types[t]
            slots.append(_SCALAR[t].from_address(base + _VALUE * i))
        res = _SCALAR[results[0]].from_address(ret) if results else None
        return raw, vp(base), vp(ret), slots, res

    def call(self, name: str, *args: int) -> int | None:
        entry = self._funcs.get(name)
        if entry is None:
            entry = self._func(name)
        func, bufs, params, results, nparams, nresults = entry
        depth = self._depth
        while len(bufs) <= depth:
            bufs.append(self._buffers(params, results))
        _, pbuf, rbuf, slots, res = bufs[depth]
        for slot, a in zip(slots, args, strict=False):
            slot.value = a
        api = self.api
        stat = self._stat
        watchdog = self.runtime.watchdog
        wall = self.limits.wall_seconds
        if not depth:
            api.stat_clear(stat)
            if api.log:
                del api.log[:]
            if wall is not None:
                watchdog.arm(wall, self._stop)
        self._depth = depth + 1
        try:
            code = api.invoke(self._executor, func, pbuf, nparams, rbuf, nresults)
        finally:
            self._depth = depth
            if not depth:
                self._fuel_used += api.stat_cost(stat)
                if wall is not None and watchdog.disarm():
                    api.stat_limit(stat, self._engine.limit)
                    if code == 3:
                        code = 0x007  # the guard, not the budget
        if code == 0:
            return res.value if res is not None else None
        raise self._failure(code)

    def _stop(self) -> None:
        self.api.stat_limit(self._stat, 0)  # the next instruction exceeds it

    def _failure(self, code: int) -> BaseException:
        api = self.api
        words = api.message(code)
        pending, self.pending = self.pending, None
        if pending is not None:
            return translate_pending(pending)
        kind = _CODES.get(code & 0xFFFFFF, "trap") if code >> 24 == 0 else "trap"
        out_of_fuel = False
        if code == 0x003:
            out_of_fuel = True
            words = budget_message(self.limits.fuel, "WasmEdge cost limit", words)
        elif code == 0x007:
            words = wall_message(self.limits.wall_seconds, "execution interrupted")
        frames = self._frames()
        if kind == "unreachable" and self._depth_limit is not None:
            if (self._helper(DEPTH_EXPORT) or 0) >= self._depth_limit:
                kind = "stack_overflow"
                words = (
                    f"call stack exhausted: more than {self._depth_limit} nested wasm calls "
                    "(pwcli's call-depth limit on WasmEdge)"
                )
        if not self._depth and self._depth_limit is not None:
            self.api.stat_clear(self._stat)
            self._helper(RESET_EXPORT)  # the trap skipped the decrements
        kind, words = memory_limit_rule(kind, words, self.memory.size(), self.limits.max_memory)
        return GuestTrap(kind, words, frames=frames, out_of_fuel=out_of_fuel)

    def _helper(self, name: str) -> int | None:
        """Call one of the depth helpers directly (no budget, no watchdog, no fuel accounting)."""
        api = self.api
        fname, keep = api.string(name)
        func = api.find_function(self._inst, fname)
        if not func:
            return None
        raw = (ctypes.c_char * (2 * _VALUE))()
        ret = (ctypes.addressof(raw) + 15) & ~15
        code = api.invoke(
            self._executor, vp(func), None, 0, vp(ret), 1 if name == DEPTH_EXPORT else 0
        )
        if code or name != DEPTH_EXPORT:
            return None
        return ctypes.c_uint32.from_address(ret).value

    def _frames(self) -> tuple[str, ...]:
        """Innermost first, as on wasmtime. WasmEdge logs the bytecode offset of the trapping
        instruction and the callers, outermost first ("calling stack:module[0]:2, module[0]:1")."""
        names = self.info.function_names
        indices: list[int] = []
        for line in self.api.log:
            m = re.search(r"Bytecode offset: 0x([0-9a-fA-F]+)", line)
            if m and not indices:
                index = _function_at(self._code, int(m.group(1), 16), self._imported_funcs)
                if index is not None:
                    indices.append(index)
            if "calling stack:" in line:
                callers = [int(x) for x in re.findall(r"module\[\d+\]:(\d+)", line)]
                indices += reversed(callers)
        del self.api.log[:]
        return tuple(names.get(i, f"func[{i}]") for i in indices)

    def fuel_consumed(self) -> int:
        return self._fuel_used


def _function_at(wasm: bytes, offset: int, imported: int) -> int | None:
    """The index of the function whose body holds byte ``offset`` of the module."""

    def leb(pos: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            b = wasm[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result, pos

    try:
        pos = 8
        while pos < len(wasm):
            sid = wasm[pos]
            size, body = leb(pos + 1)
            if sid == 10:
                count, pos = leb(body)
                for i in range(count):
                    n, start = leb(pos)
                    if start <= offset < start + n:
                        return imported + i
                    pos = start + n
                return None
            pos = body + size
    except IndexError:
        return None
    return None
