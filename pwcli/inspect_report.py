"""Rendering of ``pwcli inspect`` (from ``inspect.inspect_plugin``) and ``pwcli runtimes``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .runtimes.base import RuntimeInfo


def _row(table: Table, *cells: str) -> None:
    """Cells are plain text: names come from the module and must never be read as rich markup."""
    table.add_row(*(Text(c) for c in cells))


def _size(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            value = n / div
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _pages(pages: int) -> str:
    return f"{pages} page{'s' if pages != 1 else ''} ({_size(pages * 65536)})"


def abi_line(abi: dict[str, Any]) -> str:
    markers = ", ".join(abi["markers"])
    status = abi["status"]
    if status == "known":
        return f"{abi['version']} (exports {markers})"
    if status == "missing":
        text = "none: the module exports no proxy_abi_version_X_Y_Z marker"
    elif status == "several":
        text = f"several markers: {markers}"
    elif status == "vendor":
        text = f"vendor marker {markers}: not an ABI Envoy knows"
    else:
        text = f"unknown marker {markers}: not an ABI Envoy knows"
    if abi["abi_hint"]:
        text += f" (its version suggests --abi {abi['abi_hint']})"
    return text


def startup_line(startup: dict[str, Any]) -> str:
    seq = startup["sequence"]
    if seq:
        calls = {"main": "main(0, 0)", "__main_void": "__main_void()"}
        text = ", then ".join(calls.get(s, s + "()") for s in seq)
        ignored = [e for e in startup["exports"] if e not in seq]
        if ignored:
            text += f" (also exports {', '.join(ignored)}: not called)"
    else:
        text = "none"
    if startup["start_section"]:
        text += "; a wasm start function runs at instantiation"
    return text


def allocator_line(alloc: dict[str, Any]) -> str:
    used = alloc["used"]
    if used is None:
        if alloc["exports"]:
            return f"none usable ({', '.join(alloc['exports'])} exported with a wrong signature)"
        return "none (neither malloc nor proxy_on_memory_allocate)"
    others = [a for a in alloc["exports"] if a != used]
    if others:
        return f"{used} (also exports {', '.join(others)}; cpp-host takes malloc first)"
    return used


def memory_line(mem: dict[str, Any]) -> str:
    if mem["min_pages"] is None:
        return "none"
    text = f"{_pages(mem['min_pages'])} initial, "
    text += "no maximum" if mem["max_pages"] is None else f"maximum {_pages(mem['max_pages'])}"
    flags = [f for f in ("shared", "memory64") if mem[f]]
    if flags:
        text += f", {' '.join(flags)}"
    if mem["imported"]:
        text += "; imported"
    if mem["exports"]:
        text += "; exported as " + ", ".join(mem["exports"])
    else:
        text += "; not exported"
    return text


def toolchain_lines(tc: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    if tc["producers"]:
        fields = (f"{k}: {', '.join(v)}" for k, v in tc["producers"].items())
        rows.append(("producers", "; ".join(fields)))
    else:
        rows.append(("producers", "none (no producers section)"))
    if any(s["name"] == "name" for s in tc["custom_sections"]):
        text = f"{tc['function_names']} function names"
        text += f", module name {tc['module_name']!r}" if tc["module_name"] else ", no module name"
        rows.append(("name section", text))
    else:
        rows.append(("name section", "none (traps will show no function names)"))
    for hint in tc["hints"]:
        rows.append(("hint", hint))
    if tc["custom_sections"]:
        rows.append(("custom sections",
                     ", ".join(f"{s['name']} ({s['size']} bytes)" for s in tc["custom_sections"])))
    return rows


def _callbacks_table(report: dict[str, Any]) -> Table | None:
    version = report["abi"]["version"]
    table = Table(title="Callbacks (exports)", title_justify="left")
    table.add_column("group", no_wrap=True)
    table.add_column("export", no_wrap=True)
    table.add_column("signature", no_wrap=True)
    table.add_column(f"ABI {version}" if version else "ABI (no usable marker)", overflow="fold")
    rows = 0
    for group, entries in report["callbacks"].items():
        if not entries:
            continue
        if rows:
            table.add_section()
        for i, cb in enumerate(entries):
            check = "ok" if cb["ok"] else f"MISMATCH: want {cb['expected']}"
            if cb["note"]:
                check += f" ({cb['note']})" if cb["ok"] else f"; {cb['note']}"
            _row(table, group if i == 0 else "", cb["name"], cb["signature"], check)
            rows += 1
    return table if rows else None


def _import_row(entry: dict[str, Any], bare: bool) -> tuple[str, str, str]:
    name = entry["name"] if bare else f"{entry['module']}.{entry['name']}"
    sig = entry["signature"] or entry["kind"]
    extras = [e for e in (entry["note"], f"imported {entry['times']} times" if entry["times"] > 1
                          else None) if e]
    status = entry["status"] + (f" ({'; '.join(extras)})" if extras else "")
    return name, sig, status


def _imports_table(report: dict[str, Any]) -> Table | None:
    """proxy-wasm host calls by ABI section, WASI by module name, then anything else."""
    imports = report["imports"]
    table = Table(title="Imports", title_justify="left")
    table.add_column("group", no_wrap=True)
    table.add_column("import", no_wrap=True)
    table.add_column("signature", overflow="fold")
    table.add_column("pwcli", overflow="fold", min_width=11)
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    for e in imports["proxy_wasm"]:
        key = f"env: {e['section']}"
        if not groups or groups[-1][0] != key:
            groups.append((key, []))
        groups[-1][1].append(e)
    for e in imports["wasi"]:
        key = f"WASI: {e['module']}"
        if not groups or groups[-1][0] != key:
            groups.append((key, []))
        groups[-1][1].append(e)
    if imports["other"]:
        groups.append(("other", imports["other"]))
    for n, (group, entries) in enumerate(groups):
        if n:
            table.add_section()
        for i, e in enumerate(entries):
            _row(table, group if i == 0 else "", *_import_row(e, bare=group != "other"))
    return table if groups else None


def verdict_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The verdict as (label, text) rows: what ``pwcli replay`` does with this module, and why."""
    v = report["verdict"]
    if v["runs"]:
        return [("verdict", "runs under pwcli, as Envoy would load it")]
    rows = [("verdict", "refused, as Envoy refuses it")]
    for r in v["reasons"]:
        rows.append(("", f"- {r['detail']}" + (f" ({r['fix']})" if r["fix"] else "")))
    if not v["reasons"]:  # pragma: no cover - load_plugin refused for a reason inspect missed
        rows.append(("", f"- {v['refused']}"))
    if v["lenient"]["runs"]:
        rows.append(("with --lenient", "runs (every override is marked in the report)"))
    else:
        rows.append(("with --lenient", "still refused (--lenient overrides callback signatures and "
                                        "imports only)"))
    if v["with_abi"]:
        choices = (f"{ver}: {what}" for ver, what in v["with_abi"].items())
        rows.append(("with --abi", "; ".join(choices)))
    return rows


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def render_inspect(report: dict[str, Any], console: Console) -> None:
    head = _grid()
    _row(head, "ABI", abi_line(report["abi"]))
    _row(head, "start-up", startup_line(report["startup"]))
    _row(head, "allocator", allocator_line(report["allocator"]))
    _row(head, "memory", memory_line(report["memory"]))
    _row(head, "size", f"{report['size']} bytes ({_size(report['size'])})"
                 if report["size"] >= 1024 else f"{report['size']} bytes")
    _row(head, "sha256", report["sha256"])
    for key, value in toolchain_lines(report["toolchain"]):
        _row(head, key, value)
    console.print(f"pwcli inspect: {report['file']}", markup=False)
    console.print(head)
    for table, empty in ((_callbacks_table(report), "Callbacks (exports): none"),
                         (_imports_table(report), "Imports: none")):
        console.print()
        console.print(table if table is not None else empty)
    others = report["other_exports"]
    console.print()
    if others:
        console.print("Other exports (not proxy-wasm callbacks)")
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for e in others:
            kind = f"{e['kind']} {e['signature']}" if e["signature"] else e["kind"]
            _row(grid, f"  {e['name']}", kind, e["note"] or "")
        console.print(grid)
    else:
        console.print("Other exports: none")
    console.print()
    verdict = _grid()
    for label, text in verdict_rows(report):
        _row(verdict, label, text)
    console.print(verdict)


# -- pwcli runtimes ----------------------------------------------------------------------------
def render_runtimes(infos: Sequence[RuntimeInfo], console: Console) -> None:
    """One block per runtime: availability and version, then library, features, notes."""
    console.print("pwcli runtimes")
    width = max(len(i.name) for i in infos) if infos else 0
    for info in infos:
        console.print()
        state = (f"available, version {info.version or 'unknown'}" if info.available
                 else "not available")
        console.print(f"{info.name.ljust(width)}  {state}", markup=False)
        rows: list[tuple[str, str]] = []
        if info.location:
            rows.append(("library", info.location))
        if info.features:
            on = [k for k, v in sorted(info.features.items()) if v]
            off = [k for k, v in sorted(info.features.items()) if not v]
            text = ", ".join(on) or "none"
            if off:
                text += f" (without {', '.join(off)})"
            rows.append(("features", text))
        if info.detail:
            rows.append(("notes", info.detail))
        for label, text in rows:  # never folded: a path stays one line to copy
            console.print(f"  {label:<8}  {text}", soft_wrap=True, markup=False)
