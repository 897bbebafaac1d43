"""What a plugin is, needs and gets: ``inspect_plugin(path)`` -> a plain dict (``pwcli inspect``).

Reads the .wasm without running it. The verdict is the one ``pwcli replay`` reaches: it comes from
``load_plugin`` itself (strict and ``--lenient``; ``--abi`` for a module without a usable
marker), and every reason behind it is listed with whether ``--lenient`` overrides it.
No click, no rich here: rendering lives in ``inspect_report``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from .errors import PluginLoadError
from .host.imports import refused_imports
from .host.spec import (
    CALLBACKS,
    HOST_FUNCTIONS,
    MARKER_PREFIX,
    VERSIONS,
    WASI_MODULES,
    marker_version,
)
from .plugin import (
    abi_markers,
    bad_signatures,
    fmt_sig,
    load_plugin,
    read_wasm,
    startup_sequence,
)
from .wasm import Export, Import, ModuleInfo, parse_module

FORMAT_VERSION = 1
PAGE = 65536
GROUPS = ("lifecycle", "http", "tcp", "out-of-band", "memory and start-up")
# Section order of HOST_FUNCTIONS ("logging, time, lifecycle", "configuration", ...).
SECTIONS = tuple(dict.fromkeys(spec.section for spec in HOST_FUNCTIONS.values()))
ALLOCATORS = ("malloc", "proxy_on_memory_allocate")  # cpp-host's order
STARTUP = ("_initialize", "main", "__main_void", "_start")
IMPLEMENTED = "implemented"
REFUSED_LENIENT = "refused (stubbed with --lenient)"
# Exports that look like callbacks but are not the ABI's.
KNOWN_ALIASES = {
    "proxy_on_grpc_trailing_metadata": (
        "the AssemblyScript SDK's name for proxy_on_grpc_receive_trailing_metadata: never called"
    ),
}
AS_RUNTIME = ("__alloc", "__retain", "__release", "__collect", "__rtti_base")


def inspect_plugin(path: str | Path) -> dict[str, Any]:
    """Everything ``pwcli inspect`` shows. Raises PluginLoadError (one line) on an unreadable,
    truncated or non-wasm file, a component-model binary, a missing file or a directory."""
    name = str(path)
    wasm = read_wasm(path)
    info = parse_module(wasm, source=name)
    abi = _abi(info)
    version = abi["version"]
    return {
        "format_version": FORMAT_VERSION,
        "file": Path(name).name,
        "size": len(wasm),
        "sha256": hashlib.sha256(wasm).hexdigest(),
        "abi": abi,
        "startup": _startup(info),
        "allocator": _allocator(info),
        "memory": _memory(info),
        "callbacks": _callbacks(info, version),
        "other_exports": _other_exports(info),
        "imports": _imports(info, version),
        "toolchain": _toolchain(info),
        "verdict": _verdict(path, info, abi),
    }


# -- ABI marker ------------------------------------------------------------------------------
def _abi(info: ModuleInfo) -> dict[str, Any]:
    markers = abi_markers(info)
    known = [v for v in (marker_version(m) for m in markers) if v]
    hint = None
    if len(known) == 1:
        status, version = "known", known[0]
    else:
        version = None
        if not markers:
            status = "missing"
        elif known:
            status = "several"
        elif any(not m.startswith(MARKER_PREFIX) for m in markers):
            status = "vendor"
        else:
            status = "unknown"
        for m in markers:  # proxy_abi_mosn_version_0_2_0 -> 0.2.0
            found = re.search(r"_(\d+)_(\d+)_(\d+)$", m)
            if found and ".".join(found.groups()) in VERSIONS:
                hint = ".".join(found.groups())
                break
    return {"markers": markers, "status": status, "version": version, "abi_hint": hint}


# -- start-up, allocator, memory ---------------------------------------------------------------
def _func_names(info: ModuleInfo, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if info.func_export(n) is not None]


def _startup(info: ModuleInfo) -> dict[str, Any]:
    """What runs before the first callback, as load_plugin (and cpp-host) picks it."""
    sequence = startup_sequence(info)
    return {
        "exports": _func_names(info, STARTUP),
        "sequence": sequence,
        "start_section": info.has_start_section,
    }


def _allocator(info: ModuleInfo) -> dict[str, Any]:
    used = None
    for cand in ALLOCATORS:
        t = info.func_export(cand)
        if t is not None and t.params == ("i32",) and t.results == ("i32",):
            used = cand
            break
    return {"exports": _func_names(info, ALLOCATORS), "used": used}


def _memory(info: ModuleInfo) -> dict[str, Any]:
    limits = info.memory_limits
    imported = any(i.kind == "memory" for i in info.imports)
    out: dict[str, Any] = {
        "exports": [e.name for e in info.exports if e.kind == "memory"],
        "imported": imported,
        "min_pages": None,
        "max_pages": None,
        "min_bytes": None,
        "max_bytes": None,
        "shared": False,
        "memory64": False,
    }
    if limits is not None:
        out.update(
            min_pages=limits.minimum,
            max_pages=limits.maximum,
            min_bytes=limits.minimum * PAGE,
            max_bytes=None if limits.maximum is None else limits.maximum * PAGE,
            shared=limits.shared,
            memory64=limits.memory64,
        )
    return out


# -- exports -----------------------------------------------------------------------------------
def _callback_group(name: str) -> str | None:
    for version in VERSIONS:
        spec = CALLBACKS[version].get(name)
        if spec is not None:
            return spec.group
    return None


def _callback(exp: Export, version: str | None) -> dict[str, Any]:
    assert exp.type is not None
    got = fmt_sig(exp.type)
    entry: dict[str, Any] = {"name": exp.name, "signature": got, "expected": None, "ok": True,
                             "note": None}
    if version is not None and exp.name in CALLBACKS[version]:
        want = fmt_sig(CALLBACKS[version][exp.name].signature)
        entry.update(expected=want, ok=want == got)
        return entry
    forms: dict[str, list[str]] = {}
    for v in VERSIONS:
        spec = CALLBACKS[v].get(exp.name)
        if spec is not None:
            forms.setdefault(fmt_sig(spec.signature), []).append(v)
    if version is not None:  # a callback of another ABI version only
        others = ", ".join(v for vs in forms.values() for v in vs)
        note = f"ABI {others} only: not called under {version}"
        entry.update(expected=" | ".join(forms), note=note)
        return entry
    entry["expected"] = " | ".join(f"{s} ({', '.join(vs)})" for s, vs in forms.items()) if len(
        forms
    ) > 1 else next(iter(forms))
    entry["ok"] = got in forms
    if len(forms) > 1 and got in forms:
        entry["note"] = f"the ABI {', '.join(forms[got])} form"
    return entry


def _callbacks(info: ModuleInfo, version: str | None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for exp in info.exports:
        group = _callback_group(exp.name)
        if group is None or exp.kind != "func" or exp.type is None:
            continue
        out[group].append(_callback(exp, version))
    return out


def _other_exports(info: ModuleInfo) -> list[dict[str, Any]]:
    out = []
    for exp in info.exports:
        if exp.kind == "memory" or exp.name.startswith("proxy_abi"):
            continue
        if exp.kind == "func" and exp.type is not None and _callback_group(exp.name) is not None:
            continue
        note = KNOWN_ALIASES.get(exp.name)
        if note is None and exp.name.startswith("proxy_on_"):
            note = "not a proxy-wasm callback: never called"
        out.append({
            "name": exp.name,
            "kind": exp.kind,
            "signature": fmt_sig(exp.type) if exp.type is not None else None,
            "note": note,
        })
    return out


# -- imports -----------------------------------------------------------------------------------
def _import_status(imp: Import, version: str | None) -> tuple[str, str | None, str | None]:
    """(status, reason, note) of one import under ``version`` (None: no usable marker)."""
    if version is not None:
        refused = refused_imports([imp], version)
        return (REFUSED_LENIENT, refused[0], None) if refused else (IMPLEMENTED, None, None)
    fine = [v for v in VERSIONS if not refused_imports([imp], v)]
    if not fine:
        return REFUSED_LENIENT, refused_imports([imp], VERSIONS[-1])[0], None
    note = None if len(fine) == len(VERSIONS) else f"ABI {', '.join(fine)} only"
    return IMPLEMENTED, None, note


def _imports(info: ModuleInfo, version: str | None) -> dict[str, list[dict[str, Any]]]:
    counts: dict[tuple[str, str], int] = {}
    unique: list[Import] = []
    for imp in info.imports:
        key = (imp.module, imp.name)
        if key not in counts:
            unique.append(imp)
        counts[key] = counts.get(key, 0) + 1
    host: list[dict[str, Any]] = []
    wasi: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    for imp in unique:
        status, reason, note = _import_status(imp, version)
        entry: dict[str, Any] = {
            "module": imp.module,
            "name": imp.name,
            "kind": imp.kind,
            "signature": fmt_sig(imp.type) if imp.type is not None else None,
            "status": status,
            "reason": reason,
            "note": note,
            "times": counts[(imp.module, imp.name)],
        }
        spec = HOST_FUNCTIONS.get(imp.name) if imp.module == "env" and imp.kind == "func" else None
        if spec is not None:
            host.append({"section": spec.section, **entry})
        elif imp.module in WASI_MODULES:
            wasi.append(entry)
        else:
            other.append(entry)
    host.sort(key=lambda e: SECTIONS.index(e["section"]))
    wasi.sort(key=lambda e: WASI_MODULES.index(e["module"]))
    return {"proxy_wasm": host, "wasi": wasi, "other": other}


# -- toolchain -----------------------------------------------------------------------------------
def _toolchain(info: ModuleInfo) -> dict[str, Any]:
    producers = {
        fname: [f"{n} {v}".strip() for n, v in values] for fname, values in info.producers.items()
    }
    return {
        "producers": producers,
        "module_name": info.module_name,
        "function_names": len(info.function_names),
        "custom_sections": [{"name": n, "size": len(p)} for n, p in info.custom],
        "hints": _hints(info),
    }


def _hints(info: ModuleInfo) -> list[str]:
    """Which SDK or toolchain built it, from evidence the producers section does not give."""
    hints = []
    exports = {e.name for e in info.exports}
    as_runtime = [n for n in AS_RUNTIME if n in exports]
    if len(as_runtime) >= 3:
        hints.append(f"AssemblyScript: exports its runtime's {', '.join(as_runtime)}")
    if "proxy_on_grpc_trailing_metadata" in exports:
        hints.append("AssemblyScript proxy-wasm SDK: exports proxy_on_grpc_trailing_metadata")
    if any(n == "go:buildid" for n, _ in info.custom):
        hints.append("Go toolchain: a go:buildid custom section")
    names = " ".join(info.function_names.values())
    for needle, what in (
        ("proxy_wasm_go_sdk", "Go proxy-wasm SDK"),
        ("proxy-wasm-go-sdk", "Go proxy-wasm SDK"),
        ("10proxy_wasm", "Rust proxy-wasm SDK (proxy_wasm crate)"),
        ("11RootContext", "C++ proxy-wasm SDK (RootContext)"),
    ):
        if needle in names and not any(h.startswith(what) for h in hints):
            hints.append(f"{what}: named in the name section's function names")
    if any(i.module == "env" and i.name == "emscripten_notify_memory_growth" for i in info.imports):
        hints.append("emscripten: imports env.emscripten_notify_memory_growth")
    return hints


# -- verdict -----------------------------------------------------------------------------------
def _attempt(path: str | Path, **kw: Any) -> tuple[bool, str | None, list[str]]:
    """load_plugin as ``pwcli replay`` calls it: (runs, refusal line without the path, notes)."""
    try:
        plugin = load_plugin(path, **kw)
    except PluginLoadError as exc:
        msg = str(exc)
        prefix = f"{path}: "
        return False, msg[len(prefix):] if msg.startswith(prefix) else msg, []
    return True, None, list(plugin.lenient_notes)


def _reasons(info: ModuleInfo, abi: dict[str, Any]) -> list[dict[str, Any]]:
    """Every reason Envoy (and so pwcli) refuses the module, not only the first."""
    out: list[dict[str, Any]] = []
    version = abi["version"]
    if version is None:
        markers = ", ".join(abi["markers"])
        why = {
            "missing": f"no ABI marker ({MARKER_PREFIX}X_Y_Z)",
            "several": f"several ABI markers: {markers}",
            "vendor": f"a vendor ABI marker: {markers}",
            "unknown": f"an unknown ABI marker: {markers}",
        }[abi["status"]]
        fix = f"--abi {abi['abi_hint']} would run it as that version" if abi["abi_hint"] else (
            "--abi VERSION forces one")
        out.append({"what": "abi", "detail": f"Missing or unknown Proxy-Wasm ABI version: {why}",
                    "lenient": False, "fix": fix})
    else:
        for cb, want, got in bad_signatures(info, version):
            out.append({
                "what": "signature",
                "detail": f"Bad function signature for: {cb}, want: {fmt_sig(want)}, "
                          f"but the module exports: {fmt_sig(got)}",
                "lenient": True,
                "fix": "--lenient calls it by its declared arity",
            })
        for r in refused_imports(info.imports, version):
            out.append({"what": "import", "detail": f"imports {r}", "lenient": True,
                        "fix": "--lenient stubs it"})
    if _allocator(info)["used"] is None:
        out.append({"what": "allocator",
                    "detail": "exports no allocator (malloc or proxy_on_memory_allocate)",
                    "lenient": False, "fix": None})
    if info.export("memory") is None:
        out.append({"what": "memory", "detail": "exports no linear memory named 'memory'",
                    "lenient": False, "fix": None})
    return out


def _verdict(path: str | Path, info: ModuleInfo, abi: dict[str, Any]) -> dict[str, Any]:
    version = abi["version"]
    runs, refused, _ = _attempt(path)
    lenient_runs, lenient_refused, notes = _attempt(path, lenient=True)
    out: dict[str, Any] = {
        "runs": runs,
        "refused": refused,
        "reasons": _reasons(info, abi),
        "lenient": {"runs": lenient_runs, "refused": lenient_refused, "notes": notes},
        "with_abi": None,
    }
    if version is None:
        with_abi = {}
        for v in VERSIONS:
            if _attempt(path, abi=v)[0]:
                with_abi[v] = "runs"
            elif _attempt(path, abi=v, lenient=True)[0]:
                with_abi[v] = "runs with --lenient"
            else:
                with_abi[v] = "refused"
        out["with_abi"] = with_abi
    return out
