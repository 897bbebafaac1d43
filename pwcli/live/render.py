"""What ``pwcli proxy`` prints: each stream as it completes (request line, status, who answered,
what the plugin changed), the plugin's log lines as Envoy writes them, a summary at the end."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape

from ..textutil import hostport
from .streams import LiveStream

OPS = {"add": "+", "remove": "-", "replace": "~"}


def stream_lines(s: LiveStream) -> list[str]:
    """Plain text (no markup): the stream and what the plugin changed in it."""
    head = s.request.head
    line = (f"#{s.number} {hostport(*s.request.client)}  {head.get('method')} "
            f"{head.get('uri_path')} -> {s.response.head.get('status')}")
    if s.origin != "upstream":
        line += f"  ({s.origin})"
    out = [line]
    for where, changes in (("request", s.request_changes()), ("response", s.response_changes())):
        for op, name, before, after in changes:
            shown = f"{name}: {after}" if op == "add" else f"{name}: {before}" if op == "remove" \
                else f"{name}: {before} -> {after}"
            out.append(f"    {where:<8} {OPS[op]} {shown}")
    return out


def print_stream(console: Console, s: LiveStream) -> None:
    lines = stream_lines(s)
    console.print(f"[bold]{escape(lines[0])}[/bold]", highlight=False, soft_wrap=True)
    for line in lines[1:]:
        console.print(escape(line), highlight=False, soft_wrap=True)


def print_log(console: Console, level: str, message: str) -> None:
    console.print(f"  [dim]log[/dim] {escape(f'[{level}]')} {escape(message)}", highlight=False,
                  soft_wrap=True)


def summary(streams: list[LiveStream]) -> str:
    statuses = Counter(str(s.response.head.get("status")) for s in streams)
    origins = Counter(s.origin for s in streams if s.origin != "upstream")
    text = f"{len(streams)} stream{'s' * (len(streams) != 1)}"
    if statuses:
        text += ": " + ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
    if origins:
        text += "; " + ", ".join(f"{n} {origin}{'s' * (n != 1 and origin != 'envoy')}"
                                 for origin, n in sorted(origins.items()))
    return text
