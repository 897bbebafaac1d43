"""The comparison: what pwcli's replay showed and what Envoy did with the same traffic, stream by
stream, as a list of differences.

Compared: the request as it reached the upstream (request line, headers in order, body), the
response as it reached the client (status, headers in order, body, trailers), whether a stream was
answered locally, the plugin's log lines (of the VM's start-up and of each stream), the plugin's
metrics (Envoy's admin stats), the http calls each mock cluster received. Values only Envoy's real
clock or randomness decides are masked, never compared: see ``MASKS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..engine.run import Run
from ..events import StreamResult
from ..textutil import preview, text
from .driver import EnvoyStream
from .upstream import Received

# Added by Envoy after the plugin ran, so outside what the plugin decides: not compared.
# transfer-encoding is framing the codecs choose on each hop (the filter sees a response's only).
AFTER_PLUGIN_REQUEST = {"x-envoy-expected-rq-timeout-ms", "transfer-encoding"}  # upstream side
# the connection manager (date, server; hop-by-hop headers taken off, connection: close added)
AFTER_PLUGIN_RESPONSE = {"date", "server", "transfer-encoding", "connection", "keep-alive",
                         "proxy-connection", "upgrade"}
# Added to an http call by Envoy's async client and router, after the plugin made it.
AFTER_PLUGIN_CALLOUT = {"x-envoy-internal", "x-envoy-expected-rq-timeout-ms", "content-length",
                        "transfer-encoding"}
# Real-time or random values: shown as <masked> on both sides.
MASKED_HEADERS = {"x-request-id", "x-envoy-upstream-service-time"}
MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"\b\d{13,}\b"), "<clock>"),  # epoch milliseconds or nanoseconds
    (re.compile(r"\b1[5-9]\d{8}\b"), "<clock>"),  # epoch seconds (2017-2033)
    (re.compile(r"(x-envoy-upstream-service-time\W+)\d+"), r"\1<ms>"),
]
NOT_COMPARED = [
    "the plugin's clock: Envoy's is real, pwcli's virtual (epoch times in log lines are masked)",
    "x-request-id values (random in Envoy) and x-envoy-upstream-service-time values (real time)",
    "headers Envoy adds after the plugin: x-envoy-expected-rq-timeout-ms upstream, date and "
    "server downstream, and the hop-by-hop headers it takes off or adds on the way to the client "
    "(connection, keep-alive, proxy-connection, upgrade); transfer-encoding on the wire (each "
    "hop's codec frames the body: what the plugin saw of it is in its log lines)",
    "how many VMs start: Envoy starts the plugin once per thread (their start-up logs are "
    "compared as one)",
    "values drawn from WASI random_get (seeded in pwcli, random in Envoy)",
    "gRPC calls",
    "upstream.address and upstream.port values: Envoy's upstream is pwcli's mock on loopback, "
    "pwcli's the trace's server",
    "headers Envoy's async client adds to an http call: x-envoy-internal, "
    "x-envoy-expected-rq-timeout-ms, the framing",
]


@dataclass
class Difference:
    stream: int | None  # None: the VM or the whole run
    where: str
    what: str
    pwcli: Any
    envoy: Any

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "where": self.where, "what": self.what,
                "pwcli": self.pwcli, "envoy": self.envoy}


@dataclass
class Comparison:
    version: str
    refused: str | None = None
    differences: list[Difference] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=lambda: list(NOT_COMPARED))
    streams: int = 0

    @property
    def verdict(self) -> str:
        if self.refused is not None:
            return "refused"
        return "differ" if self.differences else "agree"

    def agrees_with(self, run: Run) -> bool:
        if self.refused is not None:  # both refused the plugin: they agree
            return run.refused_configuration is not None or run.vm_failure is not None
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "verdict": self.verdict, "refused": self.refused,
                "streams": self.streams, "not_compared": self.not_compared,
                "differences": [d.to_json() for d in self.differences]}


def mask(line: str) -> str:
    for pattern, repl in MASKS:
        line = pattern.sub(repl, line)
    return line


def _masked_headers(headers: list[tuple[str, str]], drop: set[str]) -> list[tuple[str, str]]:
    return [(n, "<masked>" if n in MASKED_HEADERS else v) for n, v in headers if n not in drop]


def _headers_differences(stream: int, where: str, ours: list[tuple[str, str]],
                         theirs: list[tuple[str, str]]) -> list[Difference]:
    if ours == theirs:
        return []
    out = []
    names = list(dict.fromkeys([n for n, _ in ours] + [n for n, _ in theirs]))
    for name in names:
        a = [v for n, v in ours if n == name]
        b = [v for n, v in theirs if n == name]
        if a != b:
            out.append(Difference(stream, where, f"header {name}", a or None, b or None))
    if not out:  # same headers, another order
        out.append(Difference(stream, where, "header order", [n for n, _ in ours],
                              [n for n, _ in theirs]))
    return out


def _pairs(pairs: list[tuple[bytes, bytes]] | None) -> list[tuple[str, str]]:
    return [(text(n), text(v)) for n, v in pairs or []]


def _upstream_view(s: StreamResult) -> tuple[str, str, list[tuple[str, str]]]:
    """pwcli's final request as an HTTP/1 upstream receives it: request line, host, headers."""
    headers = _pairs(s.request.headers)
    pseudo = dict((n, v) for n, v in headers if n.startswith(":"))
    rest = [("host", pseudo.get(":authority", ""))] + [(n, v) for n, v in headers
                                                       if not n.startswith(":")]
    return pseudo.get(":method", ""), pseudo.get(":path", ""), rest


def compare_stream(s: StreamResult, logs: list[tuple[str, str]],
                   e: EnvoyStream) -> list[Difference]:
    out: list[Difference] = []
    i = s.index
    if e.tcp:
        return _compare_connection(s, logs, e)
    if e.error is not None:
        out.append(Difference(i, "response at client", "completion", "complete", e.error))
    ours_local = s.local_reply is not None
    theirs_local = e.upstream is None and e.status is not None
    if ours_local != theirs_local:
        out.append(Difference(i, "local reply", "answered locally", ours_local, theirs_local))
    if not ours_local and e.upstream is not None:
        method, target, headers = _upstream_view(s)
        if (method, target) != (e.upstream.method, e.upstream.target):
            out.append(Difference(i, "request at upstream", "request line",
                                  f"{method} {target}", f"{e.upstream.method} {e.upstream.target}"))
        out += _headers_differences(i, "request at upstream",
                                    _masked_headers(headers, AFTER_PLUGIN_REQUEST),
                                    _masked_headers(e.upstream.headers, AFTER_PLUGIN_REQUEST))
        if s.request.body != e.upstream.body:
            out.append(Difference(i, "request at upstream", "body", text(s.request.body),
                                  text(e.upstream.body)))
    if e.status is not None:
        response = _pairs(s.response.headers)
        status = next((v for n, v in response if n == ":status"), None)
        if status != str(e.status):
            out.append(Difference(i, "response at client", "status", status, str(e.status)))
        out += _headers_differences(
            i, "response at client",
            _masked_headers([(n, v) for n, v in response if not n.startswith(":")],
                            AFTER_PLUGIN_RESPONSE),
            _masked_headers(e.headers, AFTER_PLUGIN_RESPONSE))
        if s.response.body != e.body:
            out.append(Difference(i, "response at client", "body", text(s.response.body),
                                  text(e.body)))
        if _pairs(s.response.trailers) != e.trailers:
            out.append(Difference(i, "response at client", "trailers",
                                  _pairs(s.response.trailers), e.trailers))
    return out + _log_differences(i, logs, e.logs)


def _compare_connection(s: StreamResult, logs: list[tuple[str, str]],
                        e: EnvoyStream) -> list[Difference]:
    """A TCP connection: what each side received, and the log lines."""
    out: list[Difference] = []
    if e.error is not None:
        out.append(Difference(s.index, "connection", "completion", "complete", e.error))
    if s.downstream != e.upstream_received:
        out.append(Difference(s.index, "data at upstream", "bytes", text(s.downstream),
                              text(e.upstream_received)))
    if s.upstream != e.client_received:
        out.append(Difference(s.index, "data at client", "bytes", text(s.upstream),
                              text(e.client_received)))
    return out + _log_differences(s.index, logs, e.logs)


def _log_differences(stream: int, ours: list[tuple[str, str]],
                     theirs: list[tuple[str, str]]) -> list[Difference]:
    a = [(lvl, mask(m)) for lvl, m in ours]
    b = [(lvl, mask(m)) for lvl, m in theirs]
    if a == b:
        return []
    return [Difference(stream, "logs", "log lines", [f"[{x}] {y}" for x, y in a],
                       [f"[{x}] {y}" for x, y in b])]


def compare_vm_logs(ours: list[tuple[str, str]], theirs: list[tuple[str, str]]) -> list[Difference]:
    """Start-up logs: Envoy starts one VM per thread, each logging the same: compared as one."""
    a = list(dict.fromkeys((lvl, mask(m)) for lvl, m in ours))
    b = list(dict.fromkeys((lvl, mask(m)) for lvl, m in theirs))
    if sorted(a) == sorted(b):
        return []
    return [Difference(None, "logs", "start-up log lines", [f"[{x}] {y}" for x, y in a],
                       [f"[{x}] {y}" for x, y in b])]


def compare_metrics(run: Run, stats: dict[str, Any]) -> list[Difference]:
    out = []
    for name, m in run.metrics.items():
        if m["type"] == "histogram":
            continue  # Envoy's admin shows histogram quantiles, not samples: not compared
        theirs = stats.get(name)
        if theirs != m.get("value"):
            out.append(Difference(None, "metrics", f"metric {name}", m.get("value"), theirs))
    return out


def compare_callouts(run: Run, received: dict[str, list[Received]]) -> list[Difference]:
    """The http calls each cluster received, against the calls the plugin made in pwcli."""
    out: list[Difference] = []
    for name, requests in sorted(received.items()):
        calls = [e for e in run.hostcalls("proxy_http_call") if e.args.get("upstream") == name
                 and isinstance(e.result, dict) and e.result.get("status") == "OK"]
        where, what = "callouts", f"http calls to {name}"
        if len(calls) != len(requests):
            out.append(Difference(None, where, what, len(calls), len(requests)))
            continue
        for n, (call, got) in enumerate(zip(calls, requests, strict=True)):
            headers = [(k.lower(), v) for k, v in call.args["headers"]]
            pseudo = dict((k, v) for k, v in headers if k.startswith(":"))
            ours = [f"{pseudo.get(':method')} {pseudo.get(':path')}",
                    f"host: {pseudo.get(':authority')}"]
            ours += [f"{k}: {v}" for k, v in headers if not k.startswith(":")]
            ours.append(f"body: {call.args['body']}")
            theirs = [f"{got.method} {got.target}"] + [
                f"{k}: {v}" for k, v in got.headers if k not in AFTER_PLUGIN_CALLOUT]
            theirs.append(f"body: {preview(got.body)}")
            if ours != theirs:
                out.append(Difference(call.stream, where, f"http call {n} to {name}", ours, theirs))
    return out
