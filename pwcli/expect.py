"""Expectations written in the trace: what a packet, a stream or the whole run must show.

A packet's ``expect`` checks the state of its stream right after the packet was delivered
(headers and bodies as they stand, what happened since the previous packet).
``Trace.expect.streams`` checks a whole stream, named by the index of the packet that opens it
(final headers and bodies, everything it logged). The other keys of ``Trace.expect`` check the run
as a whole. Shorthands (a header as ``"value"``, ``true``, ``false`` or ``{"regex": ...}``) are
normalized by before-validators, so a bad expectation is a trace error with the usual one-line
message, and ``pwcli schema`` shows the shorthands through ``WithJsonSchema``.

``Checker`` records the per-packet snapshots during the replay (``Replayer.after_packet``) and then
``evaluate()`` returns an ``Outcome``: the number of checks and one line per failed check.
"""

from __future__ import annotations

import base64
import difflib
import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from .errors import TraceError
from .events import Event, StreamResult

if TYPE_CHECKING:
    from .replay import Replayer, Run
    from .trace import Trace

Pairs = list[tuple[str, str]]
ACTIONS = ("continue", "pause", "stop_iteration", "continue_and_end_stream",
           "stop_all_iteration_and_buffer", "stop_all_iteration_and_watermark",
           "stop_iteration_and_buffer", "stop_iteration_and_watermark", "stop_iteration_no_buffer")
CALLBACKS = ("request_headers", "request_body", "request_trailers", "response_headers",
             "response_body", "response_trailers", "new_connection", "downstream_data",
             "upstream_data")


def _err(kind: str, msg: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, msg, ctx)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise _err("object", "must be an object")
        known = set(cls.model_fields)
        for key in data:
            if key not in known:
                near = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise _err("unknown", "unknown key {k}{h}", k=json.dumps(key), h=hint)
        return data


def _regex(v: Any) -> str:
    if not isinstance(v, str):
        raise _err("regex", "regex: must be a string")
    try:
        re.compile(v)
    except re.error as exc:
        raise _err("regex", "invalid regular expression {r}: {e}", r=json.dumps(v),
                   e=str(exc)) from None
    return v


Regex = Annotated[str, BeforeValidator(_regex)]


class Value(_Model):
    """Normalized check of one header, body or message: equal, present/absent, or a regex search."""

    equals: list[str] | None = None
    present: bool | None = None
    regex: Regex | None = None


REGEX_FORM = '{"regex": "..."}'


def _header_value(v: Any) -> Any:
    if isinstance(v, bool):
        return {"present": v}
    if isinstance(v, str):
        return {"equals": [v]}
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return {"equals": v}
    if isinstance(v, dict) and set(v) == {"regex"}:
        return {"regex": _regex(v["regex"])}
    raise _err("header", 'expected "value", ["value", ...], true (present), false (absent) '
               "or {r}", r=REGEX_FORM)


def _body_value(v: Any) -> Any:
    if isinstance(v, str):
        return {"equals": [v]}
    if isinstance(v, dict) and set(v) == {"base64"} and isinstance(v["base64"], str):
        try:
            raw = base64.b64decode(v["base64"], validate=True)
        except ValueError:
            raise _err("base64", "base64: not valid base64") from None
        return {"equals": [raw.decode("utf-8", "backslashreplace")]}
    if isinstance(v, dict) and set(v) == {"regex"}:
        return {"regex": _regex(v["regex"])}
    raise _err("body", "expected \"text\", {b} or {r}", b='{"base64": "..."}', r=REGEX_FORM)


_STR_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_REGEX = {"type": "object", "properties": {"regex": {"type": "string"}}, "required": ["regex"],
          "additionalProperties": False}
_B64 = {"type": "object", "properties": {"base64": {"type": "string"}}, "required": ["base64"],
        "additionalProperties": False}
HeaderValue = Annotated[Value, BeforeValidator(_header_value), WithJsonSchema(
    {"anyOf": [{"type": "string"}, _STR_LIST, {"type": "boolean"}, _REGEX]})]
BodyValue = Annotated[Value, BeforeValidator(_body_value), WithJsonSchema(
    {"anyOf": [{"type": "string"}, _B64, _REGEX]})]


def _header_names(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k).lower(): x for k, x in v.items()}
    raise _err("headers", "must be an object of header name -> expected value")


Headers = Annotated[dict[str, HeaderValue], BeforeValidator(_header_names)]


class MessageExpect(_Model):
    """The request or the response: headers by name, the whole ordered list, body, trailers."""

    headers: Headers | None = None
    header_list: list[tuple[str, str]] | None = None
    body: BodyValue | None = None
    trailers: Headers | None = None


class LocalReplyExpect(_Model):
    """The plugin's local reply (``false``: none)."""

    absent: SkipJsonSchema[bool] = False
    status: int | None = None
    details: str | None = None
    body: BodyValue | None = None
    headers: Headers | None = None


class FailureExpect(_Model):
    """A failure of canonical ``kind`` (in ``callback``) (``false``: none)."""

    absent: SkipJsonSchema[bool] = False
    kind: str | None = None
    callback: str | None = None


def _or_false(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return v
    if v is False:
        return {"absent": True}
    if isinstance(v, dict) and "absent" not in v:
        return v
    raise _err("object_or_false", "must be an object or false (none)")


def _schema_or_false(model: type[BaseModel]) -> WithJsonSchema:
    schema = model.model_json_schema()
    assert "$defs" not in schema, "bug in pwcli: inline schema with definitions"
    return WithJsonSchema({"anyOf": [schema, {"const": False}]})


LocalReplyValue = Annotated[LocalReplyExpect, BeforeValidator(_or_false),
                            _schema_or_false(LocalReplyExpect)]
FailureValue = Annotated[FailureExpect, BeforeValidator(_or_false),
                         _schema_or_false(FailureExpect)]


class LogExpect(_Model):
    """Log lines matching ``regex`` (a search) at ``level``: at least one, or exactly ``count``."""

    regex: Regex
    level: Literal["trace", "debug", "info", "warn", "error", "critical"] | None = None
    count: int | None = Field(default=None, ge=0)


class ActionCheck(_Model):
    """Normalized: ``every`` call of the callback ended so, or the exact ``sequence``."""

    every: str | None = None
    sequence: list[str] | None = None


def _actions(v: Any) -> Any:
    if not isinstance(v, dict):
        raise _err("actions", "must be an object of callback -> action")
    out: dict[str, dict[str, Any]] = {}
    for key, value in v.items():
        name = str(key).removeprefix("proxy_on_")
        if name not in CALLBACKS:
            raise _err("callback", "unknown callback {k} (one of: {c})", k=json.dumps(key),
                       c=", ".join(CALLBACKS))
        seq = value if isinstance(value, list) else [value]
        if not seq or any(a not in ACTIONS for a in seq):
            raise _err("action", "{k}: expected an action or a list of actions among: {a}",
                       k=key, a=", ".join(ACTIONS))
        out[name] = {"sequence": seq} if isinstance(value, list) else {"every": value}
    return out


_ACTION = {"enum": list(ACTIONS)}
Actions = Annotated[dict[str, ActionCheck], BeforeValidator(_actions), WithJsonSchema(
    {"type": "object",
     "propertyNames": {"enum": list(CALLBACKS) + [f"proxy_on_{c}" for c in CALLBACKS]},
     "additionalProperties": {"anyOf": [_ACTION, {"type": "array",
                                                                   "items": _ACTION}]}})]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _metric(v: Any) -> Any:
    if not (_is_int(v) or (isinstance(v, list) and all(_is_int(x) for x in v))):
        raise _err("metric", "expected a value (integer) or histogram samples (list of integers)")
    return v


Metric = Annotated[int | list[int], BeforeValidator(_metric)]


class HttpCallExpect(_Model):
    """proxy_http_call calls to ``upstream``: at least one matching, or exactly ``count``."""

    upstream: str
    headers: Headers | None = None
    body: BodyValue | None = None
    count: int | None = Field(default=None, ge=0)


class StreamExpect(_Model):
    """Checks of one stream: after one packet (``Packet.expect``) or at its end."""

    request: MessageExpect | None = None
    response: MessageExpect | None = None
    local_reply: LocalReplyValue | None = None
    logs: list[LogExpect] | None = None
    actions: Actions | None = None
    http_calls: list[HttpCallExpect] | None = None
    metrics: dict[str, Metric] | None = None
    failure: FailureValue | None = None


class TraceExpect(_Model):
    """``Trace.expect``: per stream (keyed by the index of its opening packet) and run-wide."""

    streams: dict[int, StreamExpect] | None = None
    logs: list[LogExpect] | None = None
    http_calls: list[HttpCallExpect] | None = None
    metrics: dict[str, Metric] | None = None
    failure: FailureValue | None = None


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


def _metric_values(metrics: Any) -> dict[str, Any]:
    return {m.name: (list(m.samples) if m.samples or m.type.name == "HISTOGRAM" else m.value)
            for m in metrics.values()}


def _stream_label(s: StreamResult) -> str:
    return f"stream #{s.index} {s.client} -> {s.server}"


class Checker:
    """Evaluates a trace's expectations; ``after_packet`` is the Replayer's per-packet hook."""

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
    def after_packet(self, index: int, replayer: Replayer) -> None:
        events = replayer.events[self.seen_events:]
        self.seen_events = len(replayer.events)
        previous = dict(self.seen_actions)
        for s in replayer.streams:
            self.seen_actions[s.index] = len(s.actions)
        if self.trace.packets[index].expect is None:
            return
        s = self._stream_of(index, replayer)
        label = f"packet {index}" + (f" ({_stream_label(s)})" if s is not None else "")
        if s is None:
            self.snapshots[index] = View(label)
            return
        live = replayer.active.get(s.ctx) if s.ctx else None
        view = View(label, s, events=[e for e in events if e.stream == s.index],
                    actions=list(s.actions[previous.get(s.index, 0):]),
                    metrics=_metric_values(replayer.host.metrics) if replayer.host else {},
                    failures=[s.failure] if s.failure else [], local_reply=s.local_reply)
        if live is not None and s.kind == "http":
            view.request = _live(live.req)
            view.response = _live(live.resp)
        else:
            view.request = _final(s.request)
            view.response = _final(s.response)
        self.snapshots[index] = view

    def _stream_of(self, index: int, replayer: Replayer) -> StreamResult | None:
        p = self.trace.packets[index]
        if p.is_tcp:
            client, server = _hostport(*p.client), _hostport(*p.server)
            for s in reversed(replayer.streams):
                if s.kind == "tcp" and (s.client, s.server) == (client, server):
                    return s
            return None
        opener = self.openers[index]
        return next((s for s in replayer.streams if s.first_packet == opener), None)

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
                        _run_metrics(run), [s.failure] if s.failure else [], s.local_reply)
            _check(se, view, out)
        whole = View("run", None, None, None, list(run.events), [], _run_metrics(run),
                     _run_failures(run))
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


def _run_metrics(run: Run) -> dict[str, Any]:
    return {k: v.get("samples", v.get("value")) for k, v in run.metrics.items()}


def _run_failures(run: Run) -> list[Any]:
    out = list(run.failures)
    if run.vm_failure is not None and run.vm_failure not in out:
        out.append(run.vm_failure)
    return out


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


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
