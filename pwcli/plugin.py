"""A plugin file, checked the way proxy-wasm-cpp-host checks it before Envoy runs it.

``load_plugin`` reads the .wasm, finds the ABI marker, refuses a callback whose signature does not
match that ABI version and an import Envoy would not link (both unless ``lenient``), and picks the
allocator and the start-up export in cpp-host's order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PluginLoadError
from .host.imports import refused_imports
from .host.spec import CALLBACKS, MARKER_PREFIX, VERSIONS, Signature, marker_version
from .wasm import FuncType, ModuleInfo, parse_module

MAX_PLUGIN_BYTES = 256 << 20


@dataclass
class Plugin:
    path: str
    name: str
    wasm: bytes
    sha256: str
    info: ModuleInfo
    abi: str
    markers: list[str]
    allocator: str | None
    startup: list[str]
    lenient_notes: list[str] = field(default_factory=list)
    arity: dict[str, int] = field(default_factory=dict)
    lenient: bool = False  # --lenient: also lets start-up and the allocator make any host call


def read_wasm(path: str | Path) -> bytes:
    name = str(path)
    p = Path(path)
    try:
        if p.is_dir():
            raise PluginLoadError(f"{name}: is a directory, not a .wasm file")
        if p.stat().st_size > MAX_PLUGIN_BYTES:
            raise PluginLoadError(f"{name}: too large for a plugin (over {MAX_PLUGIN_BYTES} bytes)")
        return p.read_bytes()
    except FileNotFoundError:
        raise PluginLoadError(f"{name}: no such file") from None
    except PermissionError:
        raise PluginLoadError(f"{name}: permission denied") from None
    except OSError as exc:
        raise PluginLoadError(f"{name}: cannot read: {exc.strerror or exc}") from None


def abi_markers(info: ModuleInfo) -> list[str]:
    return [e.name for e in info.exports if e.name.startswith("proxy_abi")]


def fmt_sig(sig: Signature | FuncType) -> str:
    params = " ".join(sig.params)
    results = " ".join(sig.results)
    return f"{params or 'void'} -> {results or 'void'}"


def bad_signatures(info: ModuleInfo, version: str) -> list[tuple[str, Signature, FuncType]]:
    out = []
    for name, spec in CALLBACKS[version].items():
        exp = info.export(name)
        if exp is None or exp.kind != "func" or exp.type is None:
            continue
        if (exp.type.params, exp.type.results) != (spec.signature.params, spec.signature.results):
            out.append((name, spec.signature, exp.type))
    return out


def startup_sequence(info: ModuleInfo) -> list[str]:
    """What runs before the first callback, in cpp-host's order: ``_initialize`` (then ``main`` or
    ``__main_void``), else ``_start``."""
    if info.func_export("_initialize") is not None:
        if info.func_export("main") is not None:
            return ["_initialize", "main"]
        if info.func_export("__main_void") is not None:
            return ["_initialize", "__main_void"]
        return ["_initialize"]
    if info.func_export("_start") is not None:
        return ["_start"]
    return []


def load_plugin(path: str | Path, *, abi: str | None = None, lenient: bool = False) -> Plugin:
    name = str(path)
    wasm = read_wasm(path)
    info = parse_module(wasm, source=name)
    markers = abi_markers(info)
    known = [v for v in (marker_version(m) for m in markers) if v]
    notes: list[str] = []
    if abi is not None:
        if abi not in VERSIONS:
            raise PluginLoadError(f"--abi {abi}: unknown ABI version (known: {', '.join(VERSIONS)})")
        version = abi
        if known != [abi]:
            found = ", ".join(markers) or "no marker"
            notes.append(f"ABI forced to {abi} with --abi (the module exports {found})")
    elif len(known) == 1:
        version = known[0]
    else:
        if not markers:
            why = f"exports no ABI marker ({MARKER_PREFIX}X_Y_Z)"
        elif known:
            why = f"exports several ABI markers: {', '.join(markers)}"
        else:
            why = f"exports an unknown ABI marker: {', '.join(markers)}"
        raise PluginLoadError(
            f"{name}: refused as Envoy refuses it (Missing or unknown Proxy-Wasm ABI version): "
            f"the module {why}; --abi VERSION forces one of {', '.join(VERSIONS)}"
        )
    for cb, want, got in bad_signatures(info, version):
        msg = (
            f"Bad function signature for: {cb}, want: {fmt_sig(want)}, "
            f"but the module exports: {fmt_sig(got)}"
        )
        if not lenient:
            raise PluginLoadError(f"{name}: refused as Envoy refuses it: {msg}; --lenient calls it by its declared arity")
        notes.append(f"lenient: {msg}; called with {len(got.params)} arguments")
    refused = refused_imports(info.imports, version)
    if refused:
        if not lenient:
            raise PluginLoadError(
                f"{name}: refused as Envoy refuses it: the module imports {refused[0]}"
                + (f" and {len(refused) - 1} more" if len(refused) > 1 else "")
                + "; --lenient stubs it"
            )
        notes.extend(f"lenient: stubbed import {r}" for r in refused)
    allocator = None
    for cand in ("malloc", "proxy_on_memory_allocate"):  # cpp-host's order
        t = info.func_export(cand)
        if t is not None and t.params == ("i32",) and t.results == ("i32",):
            allocator = cand
            break
    if allocator is None:
        raise PluginLoadError(
            f"{name}: refused as Envoy refuses it: the module exports no allocator "
            "(malloc or proxy_on_memory_allocate)"
        )
    if info.export("memory") is None:
        raise PluginLoadError(f"{name}: the module exports no linear memory named 'memory'")
    startup = startup_sequence(info)
    arity = {
        e.name: len(e.type.params) for e in info.exports if e.kind == "func" and e.type is not None
    }
    return Plugin(
        path=name,
        name=Path(name).name,
        wasm=wasm,
        sha256=hashlib.sha256(wasm).hexdigest(),
        info=info,
        abi=version,
        markers=markers,
        allocator=allocator,
        startup=startup,
        lenient_notes=notes,
        arity=arity,
        lenient=lenient,
    )
