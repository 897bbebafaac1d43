"""Run -> what the user reads: a rich table, or the canonical JSON report.

The JSON report is canonical (format_version 1): stable key order and event order, decoded values
rather than guest pointers, virtual times only, no paths, no engine messages. Two runs of the same
inputs give the same bytes, on every runtime apart from ``runtime.name``.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from .eventline import event_json, t_ms
from .events import Event, Failure, HeaderChange, LocalReply, MessageResult, StreamResult

FORMAT_VERSION = 1

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


def _load_rich() -> None:
    """rich is imported when a table is drawn: the JSON formats start faster without it."""
    global Console, Table, Text
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


# -- JSON ----------------------------------------------------------------------------------
def body_json(data: bytes) -> str | dict[str, str]:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def pairs_json(pairs: list[tuple[bytes, bytes]] | None) -> list[list[str]] | None:
    if pairs is None:
        return None
    return [[n.decode("utf-8", "backslashreplace"), v.decode("utf-8", "backslashreplace")]
            for n, v in pairs]


def failure_json(f: Failure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    out: dict[str, Any] = {
        "kind": f.kind, "callback": f.callback, "context_id": f.ctx, "t_ms": t_ms(f.t_ns)
    }
    if f.exit_code is not None:
        out["exit_code"] = f.exit_code
    if f.budget is not None:
        out["budget"] = f.budget
    return out


def local_reply_json(lr: LocalReply | None) -> dict[str, Any] | None:
    if lr is None:
        return None
    return {
        "status": lr.status,
        "details": lr.details,
        "headers": pairs_json(lr.headers),
        "body": body_json(lr.body),
        "grpc_status": lr.grpc_status,
        "sent_from": lr.callback,
    }


def message_json(m: MessageResult) -> dict[str, Any]:
    out: dict[str, Any] = {"headers": pairs_json(m.headers), "body": body_json(m.body)}
    if m.trailers is not None:
        out["trailers"] = pairs_json(m.trailers)
    if m.body_changes:
        out["body_changes"] = [
            {"t_ms": t_ms(c["t_ns"]), "before": c["before"], "after": c["after"]}
            for c in m.body_changes
        ]
    return out


def change_json(c: HeaderChange) -> dict[str, Any]:
    return {"t_ms": t_ms(c.t_ns), "map": c.map, "op": c.op, "name": c.name,
            "before": c.before, "after": c.after}


def stream_json(s: StreamResult, events: list[Event]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": s.index,
        "kind": s.kind,
        "client": s.client,
        "server": s.server,
        "context_id": s.ctx,
        "first_packet": s.first_packet,
        "flags": sorted(set(s.flags)),
        "actions": [[cb, action] for cb, action in s.actions],
        "events": [event_json(e) for e in events if e.kind != "log"],
        "logs": [
            {"t_ms": t_ms(e.t_ns), "level": e.name, "message": e.args["message"]}
            for e in events if e.kind == "log"
        ],
    }
    if s.kind == "http":
        out["request"] = message_json(s.request)
        out["response"] = message_json(s.response)
        out["header_changes"] = [change_json(c) for c in s.changes]
    else:
        out["downstream"] = body_json(s.downstream)
        out["upstream"] = body_json(s.upstream)
    out["local_reply"] = local_reply_json(s.local_reply)
    out["failure"] = failure_json(s.failure)
    if s.undelivered:
        out["undelivered_packets"] = s.undelivered
    return out


def summary(run: Any) -> dict[str, Any]:
    tally = getattr(run, "tally", None)
    if tally is not None:  # a streaming replay: the counts were kept, the streams were not
        return {"packets": run.packets, **tally, "logs": dict(run.log_counts),
                "end_t_ms": t_ms(run.end_ns), "exit_status": run.exit_code}
    streams = run.streams
    return {
        "packets": run.packets,
        "streams": len(streams),
        "completed": sum(1 for s in streams if not ({"failed", "not_run"} & set(s.flags))),
        "failed": sum(1 for s in streams if "failed" in s.flags),
        "not_run": sum(1 for s in streams if "not_run" in s.flags),
        "stalled": sum(1 for s in streams if "stalled" in s.flags),
        "incomplete": sum(1 for s in streams if "incomplete" in s.flags),
        "local_replies": sum(1 for s in streams if s.local_reply is not None),
        "host_calls": sum(1 for e in run.events if e.kind == "hostcall"),
        "callbacks": sum(1 for e in run.events if e.kind == "callback"),
        "logs": dict(run.log_counts),
        "end_t_ms": t_ms(run.end_ns),
        "exit_status": run.exit_code,
    }


def to_json(run: Any) -> dict[str, Any]:
    """The canonical report as a dict (key order is fixed by ``dumps``)."""
    by_stream: dict[int | None, list[Event]] = {}
    for ev in run.events:
        by_stream.setdefault(ev.stream, []).append(ev)
    vm_events = by_stream.get(None, [])
    return {
        "format_version": FORMAT_VERSION,
        "plugin": run.plugin,
        "runtime": {"name": run.runtime},
        "inputs": run.inputs,
        "vm": {
            "events": [event_json(e) for e in vm_events if e.kind != "log"],
            "logs": [
                {"t_ms": t_ms(e.t_ns), "level": e.name, "message": e.args["message"]}
                for e in vm_events if e.kind == "log"
            ],
            "failure": failure_json(run.vm_failure),
            "refused_configuration": run.refused_configuration,
        },
        "streams": [stream_json(s, by_stream.get(s.index, [])) for s in run.streams],
        "failures": [failure_json(f) for f in run.failures],
        "metrics": run.metrics,
        "warnings": run.warnings,
        "notes": run.notes,
        "summary": summary(run),
    }


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- table ---------------------------------------------------------------------------------
def _value(v: Any) -> str:
    if isinstance(v, str):
        return v if v and " " not in v and len(v) < 60 else json.dumps(v, ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def _call_text(ev: Event) -> Text:
    args = ", ".join(f"{k}={_value(v)}" for k, v in ev.args.items())
    if ev.kind == "callback":
        return Text.assemble(("→ ", "cyan"), (ev.name, "bold cyan"), f"({args})")
    if ev.kind == "log":
        style = {"error": "red", "critical": "bold red", "warn": "yellow"}.get(ev.name, "")
        return Text.assemble("  ", (f"[{ev.name}] ", style or "green"), ev.args["message"])
    if ev.kind == "failure":
        return Text.assemble(("✗ ", "bold red"), (ev.name, "bold red"), f"({args})")
    if ev.kind in ("note", "local_reply"):
        return Text.assemble(("• ", "magenta"), (ev.name, "magenta"), f"({args})")
    return Text.assemble("  ", (ev.name, "blue"), f"({args})")


def _result_text(ev: Event) -> str:
    r = ev.result
    if r is None:
        return ""
    if isinstance(r, dict):
        status = r.get("status", r.get("errno", ""))
        rest = {k: v for k, v in r.items() if k not in ("status", "errno")}
        if set(rest) == {"value"}:
            return f"{status} {_value(rest['value'])}".strip()
        return f"{status} {_value(rest)}".strip()
    return _value(r)


def make_console(*, file: Any = None, color: bool | None = None) -> Console:
    _load_rich()
    console = Console(file=file, highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(file=file, highlight=False, width=120, no_color=True,
                          color_system=None, soft_wrap=False)
    return console


def render_table(run: Any, console: Console) -> None:
    _load_rich()
    labels = {s.index: f"#{s.index}" for s in run.streams}
    table = Table(title=f"pwcli replay: {run.plugin['file']} (ABI {run.plugin['abi']}) on "
                  f"{run.runtime} {run.runtime_version}", title_justify="left", expand=False)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("stream", no_wrap=True)
    table.add_column("ctx", justify="right", no_wrap=True)
    table.add_column("call / log", overflow="fold")
    table.add_column("result", overflow="fold")
    for ev in run.events:
        table.add_row(
            str(t_ms(ev.t_ns)),
            labels.get(ev.stream, "vm") if ev.stream is not None else "vm",
            str(ev.ctx),
            _call_text(ev),
            _result_text(ev),
        )
    console.print(table)
    for f in run.failures:
        console.print(Text.assemble(
            ("failure: ", "bold red"),
            f"{f.kind} in {f.callback} (context {f.ctx}) at {t_ms(f.t_ns)} ms: {f.message}",
        ))
        frames = _collapse(f.frames)
        for frame, n in frames[:20]:
            console.print(f"    at {frame}" + (f"  (repeated {n} times)" if n > 1 else ""))
        if len(frames) > 20:
            console.print(f"    ... {len(frames) - 20} more frames")
    if run.refused_configuration:
        console.print(Text.assemble(("refused: ", "bold red"), run.refused_configuration))
    for s in run.streams:
        _render_stream(s, console)
    if run.metrics:
        mt = Table(title="metrics", title_justify="left")
        mt.add_column("name")
        mt.add_column("type")
        mt.add_column("value")
        for name, m in run.metrics.items():
            mt.add_row(name, m["type"], _value(m.get("value", m.get("samples"))))
        console.print(mt)
    for note in run.notes:
        console.print(Text.assemble(("note: ", "magenta"), note))
    for w in run.warnings:
        console.print(Text.assemble(("warning: ", "yellow"), w))
    console.print(summary_line(run), soft_wrap=True)


def _render_stream(s: StreamResult, console: Console) -> None:
    flags = f"  [{', '.join(sorted(set(s.flags)))}]" if s.flags else ""
    console.print(Text.assemble(
        ("\nstream ", "bold"), (f"#{s.index}", "bold"),
        f"  {s.client} -> {s.server}  {s.kind}  context {s.ctx}  first packet {s.first_packet}{flags}",
    ))
    if s.changes:
        ct = Table(title="header mutations", title_justify="left")
        for col in ("ms", "map", "op", "name", "before -> after"):
            ct.add_column(col)
        for c in s.changes:
            ct.add_row(str(t_ms(c.t_ns)), c.map, c.op, c.name,
                       f"{_opt(c.before)} -> {_opt(c.after)}")
        console.print(ct)
    if s.kind == "tcp":
        console.print(f"  downstream data: {_body(s.downstream)}")
        console.print(f"  upstream data:   {_body(s.upstream)}")
    else:
        for label, m in (("request", s.request), ("response", s.response)):
            if m.headers is None:
                console.print(f"  final {label}: (none)")
                continue
            hdrs = ", ".join(f"{n.decode(errors='replace')}: {v.decode(errors='replace')}"
                             for n, v in m.headers)
            console.print(f"  final {label} headers: {hdrs}", soft_wrap=True)
            if m.body:
                console.print(f"  final {label} body: {_body(m.body)}", soft_wrap=True)
            if m.trailers:
                tr = ", ".join(f"{n.decode(errors='replace')}: {v.decode(errors='replace')}"
                               for n, v in m.trailers)
                console.print(f"  final {label} trailers: {tr}", soft_wrap=True)
    if s.local_reply is not None:
        lr = s.local_reply
        console.print(f"  local reply: {lr.status} {lr.details!r} body {_body(lr.body)}")
    if s.failure is not None:
        console.print(f"  failure: {s.failure.kind} in {s.failure.callback}")
    if s.undelivered:
        console.print(f"  packets not delivered (the plugin answered or the stream ended): "
                      f"{', '.join(map(str, s.undelivered))}")


def _collapse(frames: tuple[str, ...]) -> list[tuple[str, int]]:
    """Consecutive identical frames (deep recursion) as one line with a count."""
    out: list[tuple[str, int]] = []
    for frame in frames:
        if out and out[-1][0] == frame:
            out[-1] = (frame, out[-1][1] + 1)
        else:
            out.append((frame, 1))
    return out


def _opt(v: str | None) -> str:
    return "(absent)" if v is None else repr(v)


def _body(b: bytes) -> str:
    text = b.decode("utf-8", "backslashreplace")
    if len(text) > 200:
        text = text[:200] + f"... ({len(b)} bytes)"
    return repr(text)


def summary_line(run: Any) -> str:
    s = summary(run)
    logs = ", ".join(f"{k} {v}" for k, v in s["logs"].items()) or "none"
    parts = [
        f"{s['packets']} packets",
        f"{s['streams']} streams ({s['completed']} completed, {s['failed']} failed"
        + (f", {s['stalled']} stalled" if s["stalled"] else "")
        + (f", {s['incomplete']} incomplete" if s["incomplete"] else "")
        + (f", {s['not_run']} not run" if s["not_run"] else "")
        + ")",
        f"{s['callbacks']} callbacks",
        f"{s['host_calls']} host calls",
        f"logs: {logs}",
        f"virtual time {s['end_t_ms']} ms",
        f"exit {s['exit_status']}",
    ]
    return "summary: " + "; ".join(parts)
