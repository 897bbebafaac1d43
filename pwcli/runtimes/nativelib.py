"""What the ctypes backends (WAMR, WasmEdge) share: finding the engine library, the wall-clock
watchdog, feature probes and the trap rules every backend applies the same way.

Nothing here knows proxy-wasm; nothing here is imported by the wasmtime backend.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import BackendError, GuestExit, GuestTrap, PluginLoadError
from ..wasm import ModuleInfo, parse_module

PAGE = 65536
T = TypeVar("T")


@dataclass(frozen=True)
class LibrarySpec:
    """How to find one engine's shared library."""

    runtime: str  # "wamr"
    title: str  # "WAMR (libiwasm)"
    env: str  # "PWCLI_WAMR_LIB"
    filename: str  # "libiwasm.so"
    find_name: str  # for ctypes.util.find_library
    places: tuple[str, ...]  # the official installers' places, "~" expanded at lookup
    install: str  # one sentence: how to get it


def load_library(
    spec: LibrarySpec, make: Callable[[ctypes.CDLL, str], T], cache: dict[str, T]
) -> T:
    """The engine library: ``$ENV``, then the installers' places, then the system library path.

    ``make(cdll, path)`` wraps a freshly opened library (once per real path; ``cache`` keeps it).
    Raises BackendError with one line: which library, where pwcli looked, how to install it.
    """
    looked: list[str] = []
    errors: list[str] = []
    env = os.environ.get(spec.env)

    def candidates() -> Iterator[str]:
        if env:
            yield env
            return
        for place in spec.places:
            yield str(Path(place).expanduser() / spec.filename)
        found = ctypes.util.find_library(spec.find_name)  # runs ldconfig: only when needed
        if found:
            yield found

    for cand in candidates():
        if cand in looked:
            continue
        looked.append(cand)
        if "/" in cand and not os.path.exists(cand):
            continue
        real = _real(cand)
        if real in cache:
            return cache[real]
        try:
            cdll = ctypes.CDLL(real)
        except OSError as exc:
            errors.append(f"{cand}: {exc}")
            continue
        made = make(cdll, real)  # BackendError when the library is unusable (too old, broken)
        cache[real] = made
        return made
    where = f"${spec.env}={env}" if env else ", ".join(looked) + ", the system library path"
    why = f" ({'; '.join(errors)})" if errors else ""
    raise BackendError(
        f"runtime {spec.runtime!r}: {spec.title} not found (looked in {where}){why}; "
        f"{spec.install}, or set {spec.env} to the library's path"
    )


def _real(path: str) -> str:
    if "/" not in path:  # a bare soname from find_library: say where the loader found it
        return path
    return os.path.realpath(path)


# -- the guest module -----------------------------------------------------------------------
def module_info(wasm: bytes) -> ModuleInfo:
    return parse_module(wasm, source="<plugin>")  # PluginLoadError when it is not wasm


def check_memory_cap(info: ModuleInfo, max_memory: int) -> int:
    """The cap in pages; a module whose initial memory is already above it is a ``memory_limit``
    failure at instantiation, as on wasmtime (engines would silently raise the cap instead)."""
    cap = max(max_memory // PAGE, 0)
    limits = info.memory_limits
    if limits is not None and limits.minimum > cap:
        raise GuestTrap(
            "memory_limit",
            f"the module's initial memory of {limits.minimum} pages "
            f"({limits.minimum * PAGE} bytes) exceeds the cap of {max_memory} bytes",
        )
    return cap


def function_imports(info: ModuleInfo) -> list[tuple[str, str]]:
    return [(i.module, i.name) for i in info.imports if i.kind == "func"]


def missing_imports(info: ModuleInfo, provided: set[tuple[str, str]]) -> None:
    """Every import must be provided: engines differ (WAMR only warns), so pwcli checks itself."""
    for imp in info.imports:
        if imp.kind != "func":
            raise PluginLoadError(
                f"the engine could not instantiate the module: unknown import: "
                f"`{imp.module}::{imp.name}` ({imp.kind}) has not been defined"
            )
        if (imp.module, imp.name) not in provided:
            raise PluginLoadError(
                f"the engine could not instantiate the module: unknown import: "
                f"`{imp.module}::{imp.name}` has not been defined"
            )


# -- traps ----------------------------------------------------------------------------------
def translate_pending(exc: BaseException, frames: tuple[str, ...] = ()) -> BaseException:
    """What a host function raised, as the guest call's outcome (same rules as wasmtime)."""
    if isinstance(exc, GuestExit):
        return GuestTrap("proc_exit", f"proc_exit({exc.code})", frames=frames, exit_code=exc.code)
    if isinstance(exc, GuestTrap) and not exc.frames:
        exc.frames = frames
    return exc  # a GuestTrap from a nested call, or a bug in pwcli: keeps its traceback


def memory_limit_rule(
    kind: str, message: str, memory_size: int, max_memory: int
) -> tuple[str, str]:
    """A guest that aborts right after the cap refused ``memory.grow`` is a ``memory_limit``."""
    if kind in ("unreachable", "trap") and memory_size + PAGE > max_memory:
        return "memory_limit", (
            f"the guest stopped with its memory at the cap of {max_memory >> 20} MiB: "
            f"memory.grow was refused ({message})"
        )
    return kind, message


def budget_message(fuel: int | None, unit: str, message: str) -> str:
    return f"the per-call budget of {fuel} fuel units ran out ({message}; {unit})"


def wall_message(seconds: float | None, message: str) -> str:
    return f"the wall-clock guard of {seconds} s ran out ({message})"


def first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "unknown error"


# -- the wall-clock watchdog ----------------------------------------------------------------
class Watchdog:
    """One thread per backend object: calls ``fire()`` once a top-level guest call overruns.

    ``arm``/``disarm`` are two attribute stores on the hot path; the thread polls every 50 ms.
    ``fire`` runs under ``lock``; ``disarm`` takes the same lock, so after it returns ``fire`` is
    not running and will not run for that call.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deadline: float | None = None
        self.fire: Callable[[], None] | None = None
        self.fired = False
        self.thread: threading.Thread | None = None

    def arm(self, seconds: float, fire: Callable[[], None]) -> None:
        self.fired = False
        self.fire = fire
        self.deadline = time.monotonic() + seconds
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="pwcli-watchdog", daemon=True)
            self.thread.start()

    def disarm(self) -> bool:
        """Stop watching; True when the guard fired during the call."""
        if self.deadline is None and not self.fired:
            return False
        with self.lock:
            self.deadline = None
            self.fire = None
            fired, self.fired = self.fired, False
        return fired

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            deadline = self.deadline
            if deadline is None or time.monotonic() <= deadline:
                continue
            with self.lock:
                fire = self.fire
                if self.deadline is not None and fire is not None:
                    self.deadline = None
                    self.fired = True
                    fire()


# -- features -------------------------------------------------------------------------------
# One tiny module per feature: it must load, instantiate and return 42 from "f".
PROBES: dict[str, str] = {
    "simd": '(module (func (export "f") (result i32) v128.const i32x4 40 2 0 0 '
    "v128.const i32x4 2 0 0 0 i32x4.add i32x4.extract_lane 0))",
    "tail_call": "(module (func $g (result i32) i32.const 42) "
    '(func (export "f") (result i32) return_call $g))',
    "bulk_memory": '(module (memory 1) (data $d "\\2a") (func (export "f") (result i32) '
    "i32.const 0 i32.const 0 i32.const 1 memory.init $d "
    "i32.const 1 i32.const 0 i32.const 1 memory.copy i32.const 1 i32.load8_u))",
    "reference_types": "(module (table 1 funcref) (func $g (result i32) i32.const 42) "
    "(elem declare func $g) "
    '(func (export "f") (result i32) i32.const 0 ref.func $g table.set '
    "i32.const 0 call_indirect (result i32)))",
    "extended_const": "(module (global $g i32 (i32.add (i32.const 40) (i32.const 2))) "
    '(func (export "f") (result i32) global.get $g))',
    "multi_value": "(module (func $g (result i32 i32) i32.const 40 i32.const 2) "
    '(func (export "f") (result i32) call $g i32.add))',
    "sign_ext": '(module (func (export "f") (result i32) i32.const 0x12a i32.extend8_s))',
}
# What a module needs, from the words of a loader that lacks it (WAMR: "unsupported opcode fd").
FEATURE_HINTS: tuple[tuple[str, str], ...] = (
    ("opcode fd", "simd"),
    ("opcode 12", "tail_call"),
    ("opcode 13", "tail_call"),
    ("opcode fc 08", "bulk_memory"),
    ("opcode fc 09", "bulk_memory"),
    ("opcode fc 0a", "bulk_memory"),
    ("opcode fc 0b", "bulk_memory"),
    ("opcode fc 0c", "reference_types"),
    ("opcode fc 0d", "reference_types"),
    ("opcode fc 0e", "reference_types"),
    ("opcode fc 0f", "reference_types"),
    ("opcode fc 10", "reference_types"),
    ("opcode fc 11", "reference_types"),
    ("opcode d0", "reference_types"),
    ("opcode d1", "reference_types"),
    ("opcode d2", "reference_types"),
    ("opcode 25", "reference_types"),
    ("opcode 26", "reference_types"),
    ("constant expression", "extended_const"),
    ("opcode fe", "threads"),
)
FEATURE_NAMES = {
    "simd": "SIMD (simd128)",
    "tail_call": "tail calls",
    "bulk_memory": "bulk memory",
    "reference_types": "reference types",
    "extended_const": "extended constant expressions",
    "multi_value": "multi-value",
    "sign_ext": "sign extension",
    "threads": "threads/atomics",
}


def probe_modules() -> dict[str, bytes]:
    """The probes as binaries (wasmtime's wat2wasm: a dependency of pwcli anyway)."""
    import wasmtime

    return {name: bytes(wasmtime.wat2wasm(text)) for name, text in PROBES.items()}


def probe_features(run: Callable[[bytes], int | None]) -> dict[str, bool]:
    """``run(wasm)`` loads a probe and returns f(), or None when the engine refuses it."""
    out: dict[str, bool] = {}
    for name, wasm in probe_modules().items():
        try:
            out[name] = run(wasm) == 42
        except Exception:  # noqa: BLE001 - a refused probe is a missing feature
            out[name] = False
    return out


def feature_error(
    runtime: str, message: str, features: dict[str, bool], build_hint: Callable[[str], str]
) -> PluginLoadError:
    """A refused module: name the feature it needs when the engine's words or the probes tell."""
    low = message.lower()
    needed = next((f for hint, f in FEATURE_HINTS if hint in low), None)
    lacking = sorted(k for k, v in features.items() if not v and k in FEATURE_NAMES)
    if needed is not None and features.get(needed, True) is False or needed == "threads":
        return PluginLoadError(
            f"the module needs {FEATURE_NAMES.get(needed, needed)}, which this {runtime} library "
            f"lacks ({build_hint(needed)}): {first_line(message)}"
        )
    extra = f" (this {runtime} library lacks: {', '.join(lacking)})" if lacking else ""
    return PluginLoadError(f"the engine refused the module: {first_line(message)}{extra}")


def frames_from_names(indices: Sequence[int], names: dict[int, str]) -> tuple[str, ...]:
    return tuple(names.get(i, f"func[{i}]") for i in indices)
