"""Checking a trace's expectations (their schema is ``pwcli.expect_schema``).

``Checker`` records a snapshot of the packet's stream after each packet that has an ``expect``
(through ``Session.after_packet``, from the session's public views), then ``evaluate(run)`` checks
every expectation against those snapshots and the finished ``Run``: an ``Outcome`` with the number
of checks and one line per failed check.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import TraceError
from .events import Event, StreamResult
from .expect_schema import (
    ActionCheck,
    FailureExpect,
    HttpCallExpect,
    LocalReplyExpect,
    LogExpect,
    MessageExpect,
    StreamExpect,
    Value,
)
from .textutil import hostport

if TYPE_CHECKING:
    from .engine import Run, Session
    from .trace import Trace

Pairs = list[tuple[str, str]]


# -- snapshots -----------------------------------------------------------------------------
@dataclass
class View:
    """What one scope shows: a stream after a packet, a whole stream, or the whole run."""

    label: str
    stream: StreamResult | None = None
    request: tuple[Pairs | None, bytes, Pairs | None] | None = None
    response: tuple[Pairs | None, bytes, Pairs | None] | None = None
    events: list[Event] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    failures: list[Any] = field(default_factory=list)
    local_reply: Any = None


@dataclass
class Outcome:
    checks: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        if self.ok:
            return [f"expect: {self.checks} check{'s' if self.checks != 1 else ''} passed"]
        n = len(self.failures)
        return [f"expect: {n} of {self.checks} checks failed"] + [f"  {f}" for f in self.failures]


def has_expectations(trace: Trace) -> bool:
    return trace.expect is not None or any(p.expect is not None for p in trace.packets)


def openers(trace: Trace) -> list[int]:
    """For each packet, the index of the packet that opens its stream (as the replay pairs them)."""
    conns: dict[Any, dict[str, Any]] = {}
    out: list[int] = []
    for i, p in enumerate(trace.packets):
        c = conns.setdefault(p.key, {"open": None, "awaiting": deque(), "tcp": None})
        if p.is_tcp:
            if c["tcp"] is None:
                c["tcp"] = i
            out.append(c["tcp"])
            if p.close is not None:
                c["tcp"] = None
        elif p.forward_direction:
            opener = i if c["open"] is None else c["open"]
            if c["open"] is None:
                c["awaiting"].append(i)
            c["open"] = None if p.end_stream else opener
            out.append(opener)
        else:
            out.append(c["awaiting"][0])
            if p.end_stream:
                c["awaiting"].popleft()
    return out


def _pairs(pairs: Any) -> Pairs | None:
    if pairs is None:
        return None
    return [(n.decode("utf-8", "backslashreplace"), v.decode("utf-8", "backslashreplace"))
            for n, v in pairs]


def _stream_label(s: StreamResult) -> str:
    return f"stream #{s.index} {s.client} -> {s.server}"


class Checker:
    """Evaluates a trace's expectations; ``after_packet`` is the Session's per-packet hook."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.openers = openers(trace)
        self.snapshots: dict[int, View] = {}
        self.seen_events = 0
        self.seen_actions: dict[int, int] = {}
        self._check_stream_keys()

    def _check_stream_keys(self) -> None:
        te = self.trace.expect
        if te is None or not te.streams:
            return
        opening = sorted(set(self.openers))
        for key in te.streams:
            if key not in opening:
                raise TraceError(
                    f"packet {key} does not open a stream (streams open at packets "
                    f"{', '.join(map(str, opening))})",
                    path=self.trace.source, field=f"expect.streams.{key}",
                )

    # -- during the replay ------------------------------------------------------------------
    def after_packet(self, index: int, session: Session) -> None:
        events = session.events[self.seen_events:]
        self.seen_events = len(session.events)
        previous = dict(self.seen_actions)
        for done in session.streams:
            self.seen_actions[done.index] = len(done.actions)
        if self.trace.packets[index].expect is None:
            return
        s = self._stream_of(index, session)
        label = f"packet {index}" + (f" ({_stream_label(s)})" if s is not None else "")
        if s is None:
            self.snapshots[index] = View(label)
            return
        view = View(label, s, events=[e for e in events if e.stream == s.index],
                    actions=list(s.actions[previous.get(s.index, 0):]),
                    metrics=session.metric_values(),
                    failures=[s.failure] if s.failure else [], local_reply=s.local_reply)
        live = session.live_messages(s) if s.kind == "http" else None
        if live is not None:
            view.request, view.response = _live(live[0]), _live(live[1])
        else:
            view.request = _final(s.request)
            view.response = _final(s.response)
        self.snapshots[index] = view

    def _stream_of(self, index: int, session: Session) -> StreamResult | None:
        p = self.trace.packets[index]
        if p.is_tcp:
            client, server = hostport(*p.client), hostport(*p.server)
            for s in reversed(session.streams):
                if s.kind == "tcp" and (s.client, s.server) == (client, server):
                    return s
            return None
        opener = self.openers[index]
        return next((s for s in session.streams if s.first_packet == opener), None)

    # -- after the replay -------------------------------------------------------------------
    def evaluate(self, run: Run) -> Outcome:
        out = Outcome()
        for index, p in enumerate(self.trace.packets):
            if p.expect is not None:
                _check(p.expect, self.snapshots.get(index, View(f"packet {index}")), out)
        te = self.trace.expect
        if te is None:
            return out
        for key, se in sorted((te.streams or {}).items()):
            s = next((s for s in run.streams if s.first_packet == key), None)
            if s is None:
                out.checks += 1
                out.failures.append(f"stream opened by packet {key}: no such stream in this run")
                continue
            view = View(f"{_stream_label(s)} (opened by packet {key})", s,
                        _final(s.request), _final(s.response),
                        [e for e in run.events if e.stream == s.index], list(s.actions),
                        run.metric_values(), [s.failure] if s.failure else [], s.local_reply)
            _check(se, view, out)
        whole = View("run", None, None, None, list(run.events), [], run.metric_values(),
                     run.all_failures())
        run_wide = StreamExpect.model_construct(logs=te.logs, http_calls=te.http_calls,
                                                metrics=te.metrics, failure=te.failure)
        _check(run_wide, whole, out)
        return out


def _live(m: Any) -> tuple[Pairs | None, bytes, Pairs | None]:
    headers = _pairs(m.headers.pairs) if m.headers is not None else None
    trailers = _pairs(m.trailers.pairs) if m.trailers is not None else None
    return headers, bytes(m.forwarded) + bytes(m.body), trailers


def _final(m: Any) -> tuple[Pairs | None, bytes, Pairs | None]:
    return _pairs(m.headers), m.body, _pairs(m.trailers)


# -- the checks ----------------------------------------------------------------------------
def _check(e: StreamExpect, v: View, out: Outcome) -> None:
    def fail(what: str, expected: str, got: str) -> None:
        out.failures.append(f"{v.label}: {what}: expected {expected}, got {got}")

    for side, me in (("request", e.request), ("response", e.response)):
        if me is not None:
            _message(side, me, getattr(v, side), out, fail)
    if e.local_reply is not None:
        _local_reply(e.local_reply, v.local_reply, out, fail)
    for le in e.logs or []:
        out.checks += 1
        _log(le, v.events, fail)
    for name, want in (e.actions or {}).items():
        out.checks += 1
        _action(name, want, v.actions, fail)
    for he in e.http_calls or []:
        out.checks += 1
        _http_call(he, v.events, fail)
    for name, value in (e.metrics or {}).items():
        out.checks += 1
        got = v.metrics.get(name)
        if got != value:
            fail(f"metric {name}", _show(value), "no such metric" if got is None else _show(got))
    if e.failure is not None:
        out.checks += 1
        _failure(e.failure, v.failures, fail)


def _message(side: str, me: MessageExpect, got: Any, out: Outcome, fail: Any) -> None:
    headers, body, trailers = got if got is not None else (None, b"", None)
    for name, want in (me.headers or {}).items():
        out.checks += 1
        _header(f"{side} header {name}", want, _values(headers, name), fail)
    if me.header_list is not None:
        out.checks += 1
        wanted = [tuple(p) for p in me.header_list]
        if wanted != (headers or []):
            fail(f"{side} headers", _show_pairs(wanted), _show_pairs(headers))
    if me.body is not None:
        out.checks += 1
        _text(f"{side} body", me.body, body.decode("utf-8", "backslashreplace"), fail)
    for name, want in (me.trailers or {}).items():
        out.checks += 1
        _header(f"{side} trailer {name}", want, _values(trailers, name), fail)


def _values(pairs: Pairs | None, name: str) -> list[str]:
    return [v for n, v in pairs or [] if n.lower() == name]


def _header(what: str, want: Value, got: list[str], fail: Any) -> None:
    shown = "absent" if not got else _show(got[0] if len(got) == 1 else got)
    if want.present is not None:
        if want.present != bool(got):
            fail(what, "present" if want.present else "absent", shown)
    elif want.equals is not None:
        if got != want.equals:
            fail(what, _show(want.equals[0] if len(want.equals) == 1 else want.equals), shown)
    elif want.regex is not None and not any(re.search(want.regex, g) for g in got):
        fail(what, f"a value matching /{want.regex}/", shown)


def _text(what: str, want: Value, got: str, fail: Any) -> None:
    if want.equals is not None and got != want.equals[0]:
        fail(what, _show(want.equals[0]), _show(got))
    elif want.regex is not None and not re.search(want.regex, got):
        fail(what, f"to match /{want.regex}/", _show(got))


def _local_reply(want: LocalReplyExpect, got: Any, out: Outcome, fail: Any) -> None:
    out.checks += 1
    if want.absent or got is None:
        if want.absent and got is not None:
            fail("local reply", "none", f"{got.status} {_show(got.details)}")
        elif not want.absent:
            fail("local reply", "one" + (f" with status {want.status}" if want.status else ""),
                 "none")
        return
    if want.status is not None and got.status != want.status:
        fail("local reply status", str(want.status), str(got.status))
    if want.details is not None and got.details != want.details:
        fail("local reply details", _show(want.details), _show(got.details))
    if want.body is not None:
        _text("local reply body", want.body, got.body.decode("utf-8", "backslashreplace"), fail)
    for name, hv in (want.headers or {}).items():
        _header(f"local reply header {name}", hv, _values(_pairs(got.headers), name), fail)


def _log(le: LogExpect, events: list[Event], fail: Any) -> None:
    lines = [e for e in events if e.kind == "log" and (le.level is None or e.name == le.level)]
    hits = [e for e in lines if re.search(le.regex, e.args["message"])]
    what = f"log {'[' + le.level + '] ' if le.level else ''}/{le.regex}/"
    if le.count is None and hits:
        return
    if le.count is not None and len(hits) == le.count:
        return
    expected = "at least one matching line" if le.count is None else (
        f"{le.count} matching line{'s' if le.count != 1 else ''}")
    shown = hits if hits else lines
    sample = "; ".join(f"[{e.name}] {_show(e.args['message'])}" for e in shown[:3])
    more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
    if hits:
        got = f"{len(hits)}: {sample}{more}"
    else:
        got = "none" + (f" (lines{' at ' + le.level if le.level else ''}: {sample}{more})"
                        if lines else " (no log lines)")
    fail(what, expected, got)


def _action(name: str, want: ActionCheck, actions: list[tuple[str, str]], fail: Any) -> None:
    got = [a for cb, a in actions if cb == f"proxy_on_{name}"]
    what = f"action of proxy_on_{name}"
    if want.every is not None:
        if not got or not all(_action_matches(want.every, a) for a in got):
            fail(what, want.every, ", ".join(got) if got else "not called")
    elif want.sequence is not None:
        seq = want.sequence
        if len(got) != len(seq) or not all(map(_action_matches, seq, got)):
            fail(what, f"[{', '.join(seq)}]", f"[{', '.join(got)}]")


def _action_matches(want: str, got: str) -> bool:
    if want == "continue":
        return got in ("continue", "continue_and_end_stream")
    if want == "pause":
        return got not in ("continue", "continue_and_end_stream")
    return want == got


def _http_call(he: HttpCallExpect, events: list[Event], fail: Any) -> None:
    calls = [e for e in events if e.kind == "hostcall" and e.name == "proxy_http_call"]
    mine = [e for e in calls if e.args.get("upstream") == he.upstream]
    problems: list[list[str]] = []
    for e in mine:
        found: list[str] = []

        def note(what: str, expected: str, got: str, found: list[str] = found) -> None:
            found.append(f"{what}: expected {expected}, got {got}")

        headers = [(n, v) for n, v in e.args.get("headers", [])]
        for name, hv in (he.headers or {}).items():
            _header(f"header {name}", hv, _values(headers, name), note)
        if he.body is not None:
            _text("body", he.body, e.args.get("body", ""), note)
        problems.append(found)
    matching = sum(1 for p in problems if not p)
    what = f"http call to {he.upstream}"
    if he.count is not None:
        if matching != he.count:
            fail(what, f"{he.count} matching call{'s' if he.count != 1 else ''}",
                 f"{matching}" + (f" ({'; '.join(problems[0])})" if problems and problems[0]
                                  else ""))
        return
    if matching:
        return
    if not mine:
        others = sorted({str(e.args.get("upstream")) for e in calls})
        fail(what, "at least one", "none" + (f" (calls to: {', '.join(others)})" if others else ""))
    else:
        fail(what, "at least one matching", "; ".join(problems[0]))


def _failure(want: FailureExpect, got: list[Any], fail: Any) -> None:
    shown = ", ".join(f"{f.kind} in {f.callback}" for f in got) or "none"
    if want.absent:
        if got:
            fail("failure", "none", shown)
        return
    callbacks = (want.callback, f"proxy_on_{want.callback}")
    for f in got:
        if want.kind in (None, f.kind) and (want.callback is None or f.callback in callbacks):
            return
    parts = [want.kind or "a failure"] + ([f"in {want.callback}"] if want.callback else [])
    fail("failure", " ".join(parts), shown)


def _show(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def _show_pairs(pairs: Any) -> str:
    if pairs is None:
        return "no headers"
    return _show([list(p) for p in pairs])
