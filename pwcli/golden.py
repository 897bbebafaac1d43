"""Golden files: compare a run's canonical JSON report with a committed one and name what changed.

A golden file is exactly what ``pwcli replay --format json`` prints. ``compare(expected, actual)``
ignores what is specific to a runtime (the ``runtime`` object), so one golden serves every runtime,
and returns one readable line per difference, e.g.::

    streams[0] (10.0.0.2:50124 -> 10.0.0.1:443): response header x-wasm-custom: "FOO" -> "BAR"

A mismatch is a result, not an exception: ``check()`` returns a ``GoldenResult`` and the CLI turns a
failed one into exit status 1. Only an unreadable golden (not JSON, not a pwcli report) raises.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError

RUNTIME_SPECIFIC = ("runtime",)
ORDER = ("format_version", "plugin", "inputs", "vm", "streams", "failures", "metrics",
         "warnings", "notes", "summary")
STREAM_ORDER = ("kind", "context_id", "first_packet", "request", "response", "local_reply",
                "failure", "flags", "actions", "header_changes", "downstream", "upstream",
                "undelivered_packets", "events", "logs")
HEADER_LISTS = {"headers": "header", "trailers": "trailer"}
MISSING: Any = object()
MAX_VALUE = 120


@dataclass
class GoldenResult:
    """The outcome of a golden check. ``status``: match | differ | missing | written | unchanged."""

    path: str
    status: str
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("match", "written", "unchanged")

    def lines(self) -> list[str]:
        """What the CLI prints."""
        p = self.path
        if self.status == "match":
            return [f"golden {p}: matches"]
        if self.status == "unchanged":
            return [f"golden {p}: up to date"]
        n = len(self.differences)
        plural = "s" if n != 1 else ""
        if self.status == "written":
            return [f"golden {p}: written" + (f" ({n} difference{plural} from the old one)"
                                              if n else "")]
        if self.status == "missing":
            return [f"golden {p}: no such file; run again with --update-golden to create it"]
        return (
            [f"golden {p}: {n} difference{plural} (golden -> this run)"]
            + [f"  {d}" for d in self.differences]
            + ["if the change is intended, run again with --update-golden"]
        )


def check(path: str | Path, report: dict[str, Any], *, update: bool = False) -> GoldenResult:
    """Compare ``report`` with the golden at ``path``; with ``update``, (re)write it instead."""
    p = Path(path)
    name = str(path)
    old = load(p) if p.exists() else None
    if update:
        diffs = compare(old, report) if old is not None else []
        if old is not None and not diffs and p.read_text(encoding="utf-8") == dumps(report):
            return GoldenResult(name, "unchanged")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(dumps(report), encoding="utf-8")
        return GoldenResult(name, "written", diffs)
    if old is None:
        return GoldenResult(name, "missing")
    diffs = compare(old, report)
    return GoldenResult(name, "differ" if diffs else "match", diffs)


def dumps(report: dict[str, Any]) -> str:
    """The golden file's text: the same bytes as ``pwcli replay --format json``."""
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load(path: str | Path) -> dict[str, Any]:
    """Read a golden file. Raises InputError (exit status 2) when it is not a pwcli JSON report."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"golden {path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"golden {path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except OSError as exc:
        raise InputError(f"golden {path}: cannot read: {exc.strerror or exc}") from None
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise InputError(f"golden {path}: not a pwcli JSON report (no format_version)")
    return raw


def normalize(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs between runtimes."""
    return {k: v for k, v in report.items() if k not in RUNTIME_SPECIFIC}


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """One readable line per difference between two reports (golden first); [] when equal."""
    exp, act = normalize(expected), normalize(actual)
    if exp.get("format_version") != act.get("format_version"):
        return [f"format_version: {_show(exp.get('format_version'))} -> "
                f"{_show(act.get('format_version'))} (the golden was written by another pwcli "
                "version: regenerate it with --update-golden)"]
    out: list[str] = []
    keys = [k for k in ORDER if k in exp or k in act]
    keys += sorted((set(exp) | set(act)) - set(ORDER))
    for key in keys:
        a, b = exp.get(key, MISSING), act.get(key, MISSING)
        if key == "streams" and isinstance(a, list) and isinstance(b, list):
            _streams(a, b, out)
        elif key == "vm" and isinstance(a, dict) and isinstance(b, dict):
            _section("vm", "vm", a, b, out)
        else:
            _diff(key, a, b, out)
    return out


# -- streams ---------------------------------------------------------------------------------
def _label(s: dict[str, Any], index: int) -> str:
    return f"streams[{index}] ({s.get('client', '?')} -> {s.get('server', '?')})"


def _streams(a: list[Any], b: list[Any], out: list[str]) -> None:
    if len(a) != len(b):
        out.append(f"streams: {len(a)} -> {len(b)} streams")
    for i in range(max(len(a), len(b))):
        if i >= len(b):
            out.append(f"{_label(a[i], i)}: missing from this run")
        elif i >= len(a):
            out.append(f"{_label(b[i], i)}: new in this run")
        elif a[i] != b[i]:
            label = _label(b[i], i)
            if (a[i].get("client"), a[i].get("server")) != (b[i].get("client"), b[i].get("server")):
                label = f"streams[{i}] ({a[i].get('client')} -> {a[i].get('server')}, now " \
                        f"{b[i].get('client')} -> {b[i].get('server')})"
            _section(f"streams[{i}]", label, a[i], b[i], out)


def _section(path: str, label: str, a: dict[str, Any], b: dict[str, Any], out: list[str]) -> None:
    """A stream (or the vm section): messages by header name, events and logs one by one."""
    keys = [k for k in STREAM_ORDER if k in a or k in b]
    keys += [k for k in list(a) + list(b) if k not in keys]
    for key in dict.fromkeys(keys):
        x, y = a.get(key, MISSING), b.get(key, MISSING)
        if x == y:
            continue
        if key in ("request", "response") and isinstance(x, dict) and isinstance(y, dict):
            _message(label, key, x, y, out)
        elif key == "events" and isinstance(x, list) and isinstance(y, list):
            _records(f"{label}: events", x, y, _event, out, _event_change)
        elif key == "logs" and isinstance(x, list) and isinstance(y, list):
            _records(f"{label}: logs", x, y, _log, out)
        elif key == "local_reply" and isinstance(x, dict) and isinstance(y, dict):
            _message(label, "local reply", x, y, out)
        else:
            _diff(f"{label}: {key}", x, y, out)


def _message(label: str, side: str, a: dict[str, Any], b: dict[str, Any], out: list[str]) -> None:
    for key in list(a) + [k for k in b if k not in a]:
        x, y = a.get(key, MISSING), b.get(key, MISSING)
        if x == y:
            continue
        if key in HEADER_LISTS and _is_pairs(x) and _is_pairs(y):
            _headers(f"{label}: {side} {HEADER_LISTS[key]}", x, y, out)
        else:
            _diff(f"{label}: {side} {key.replace('_', ' ')}", x, y, out)


def _is_pairs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 for p in v)


def _headers(prefix: str, a: list[list[str]], b: list[list[str]], out: list[str]) -> None:
    """Header lists compared by name (values in order); a pure reordering is named as such."""
    va: dict[str, list[str]] = {}
    vb: dict[str, list[str]] = {}
    for n, v in a:
        va.setdefault(n, []).append(v)
    for n, v in b:
        vb.setdefault(n, []).append(v)
    before = len(out)
    for name in list(va) + [n for n in vb if n not in va]:
        x, y = va.get(name), vb.get(name)
        if x == y:
            continue
        if y is None:
            out.append(f"{prefix} {name}: removed (was {_values(x)})")
        elif x is None:
            out.append(f"{prefix} {name}: added {_values(y)}")
        else:
            out.append(f"{prefix} {name}: {_values(x)} -> {_values(y)}")
    if len(out) == before:
        out.append(f"{prefix}s: order changed: {', '.join(n for n, _ in a)} -> "
                   f"{', '.join(n for n, _ in b)}")


def _values(v: list[str] | None) -> str:
    if not v:
        return "(none)"
    return _show(v[0]) if len(v) == 1 else _show(v)


# -- ordered records (events, logs) ----------------------------------------------------------
def _event(e: Any) -> str:
    if not isinstance(e, dict):
        return _show(e)
    args = ", ".join(f"{k}={_short(v)}" for k, v in (e.get("args") or {}).items())
    text = f"{e.get('t_ms')}ms ctx {e.get('ctx')} {e.get('kind')} {e.get('name')}({args})"
    if "result" in e:
        text += f" -> {_short(e['result'])}"
    return text


def _log(e: Any) -> str:
    if not isinstance(e, dict):
        return _show(e)
    return f"{e.get('t_ms')}ms [{e.get('level')}] {_show(e.get('message'))}"


def _event_change(a: Any, b: Any) -> str:
    """Two events at the same place: only what changed when it is the same call."""
    same = ("kind", "name")
    if not (isinstance(a, dict) and isinstance(b, dict)) or any(a.get(k) != b.get(k) for k in same):
        return f"{_event(a)}  ->  {_event(b)}"
    parts: list[str] = []
    for key in list(a) + [k for k in b if k not in a]:
        _diff(key, a.get(key, MISSING), b.get(key, MISSING), parts)
    return f"{a.get('kind')} {a.get('name')}: {'; '.join(parts)}"


def _records(path: str, a: list[Any], b: list[Any], show: Any, out: list[str],
             change: Any = None) -> None:
    keys_a = [json.dumps(x, sort_keys=True) for x in a]
    keys_b = [json.dumps(x, sort_keys=True) for x in b]
    sm = difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            continue
        # Within a changed block, records of the same kind and name are one record changed.
        ids_a = [_identity(x) for x in a[i1:i2]]
        ids_b = [_identity(y) for y in b[j1:j2]]
        inner = difflib.SequenceMatcher(None, ids_a, ids_b, autojunk=False)
        for op2, k1, k2, l1, l2 in inner.get_opcodes():
            if op2 == "equal" or (op2 == "replace" and k2 - k1 == l2 - l1):
                for k in range(k2 - k1):
                    x, y = a[i1 + k1 + k], b[j1 + l1 + k]
                    text = change(x, y) if change else f"{show(x)}  ->  {show(y)}"
                    out.append(f"{path}[{j1 + l1 + k}]: {text}")
                continue
            for k in range(k1, k2):
                out.append(f"{path}[{i1 + k}]: removed: {show(a[i1 + k])}")
            for k in range(l1, l2):
                out.append(f"{path}[{j1 + k}]: added: {show(b[j1 + k])}")


def _identity(record: Any) -> str:
    if isinstance(record, dict):
        return json.dumps([record.get("kind"), record.get("name"), record.get("level")])
    return json.dumps(record, sort_keys=True)


# -- anything else ---------------------------------------------------------------------------
def _diff(path: str, a: Any, b: Any, out: list[str]) -> None:
    if a == b:
        return
    if a is MISSING:
        out.append(f"{path}: added {_show(b)}")
    elif b is MISSING:
        out.append(f"{path}: removed (was {_show(a)})")
    elif isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            _diff(f"{path}.{key}", a.get(key, MISSING), b.get(key, MISSING), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(f"{path}[{i}]", x, y, out)
    elif isinstance(a, list) and isinstance(b, list):
        _records(path, a, b, _show, out)
    else:
        out.append(f"{path}: {_show(a)} -> {_show(b)}")


def _show(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 3] + "..."


def _short(v: Any) -> str:
    if isinstance(v, str) and v and " " not in v and len(v) < 60:
        return v
    if isinstance(v, dict) and set(v) <= {"status", "value"}:
        return " ".join(_short(x) for x in v.values())
    return _show(v)
