"""The runs ``pwcli ui`` makes: what the page asks for, checked against the directories the server
was given, replayed through the engine with each event passed on as it happens, kept in a history.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

PLUGIN_SUFFIXES = (".wasm",)
TRAFFIC_SUFFIXES = (".json", ".jsonl", ".ndjson", ".pcap", ".pcapng", ".har")
HISTORY = 50  # runs kept
MAX_FILES = 2000


class Files:
    """The directories the server may read, and nothing outside them."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = [d.resolve() for d in dirs]

    def resolve(self, name: str, suffixes: tuple[str, ...]) -> Path:
        """``name`` (relative to a given directory) as a path inside one of them, or InputError."""
        for d in self.dirs:
            path = (d / name).resolve()
            if path.is_relative_to(d) and path.is_file():
                if not path.name.lower().endswith(suffixes):
                    raise InputError(f"{name}: not a {' or '.join(suffixes)} file")
                return path
        raise InputError(f"{name}: no such file in the directories pwcli ui was given")

    def listing(self, suffixes: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for d in self.dirs:
            for path in sorted(d.rglob("*")):
                if len(out) >= MAX_FILES:
                    return out
                if path.is_file() and path.name.lower().endswith(suffixes) and \
                        not any(part.startswith(".") for part in path.relative_to(d).parts):
                    out.append(str(path.relative_to(d)))
        return out


@dataclass
class RunSpec:
    """What the page sends: a plugin and its inputs, and either one request or a traffic file."""

    plugin: str
    runtime: str = "wasmtime"
    root_id: str = ""
    configuration: str = ""
    file: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> RunSpec:
        if not isinstance(raw, dict) or not isinstance(raw.get("plugin"), str):
            raise InputError("a run needs a plugin")
        known = {k: raw[k] for k in ("plugin", "runtime", "root_id", "configuration", "file",
                                     "request", "response") if raw.get(k) is not None}
        return cls(**known)

    def label(self) -> str:
        if self.file:
            return f"{self.plugin} < {self.file}"
        method, path = self.request.get("method") or "GET", self.request.get("path") or "/"
        return f"{self.plugin} < {method} {path}"


def _lines(text: Any) -> list[str]:
    return [line for line in str(text or "").splitlines() if line.strip()]


def traffic(spec: RunSpec, files: Files) -> Any:
    """The trace to replay: the traffic file, or the one request composed on the page."""
    if spec.file:
        from ..tracestream import open_trace
        from ..traffic.convert import open_capture

        path = files.resolve(spec.file, TRAFFIC_SUFFIXES)
        return open_capture(str(path)) or open_trace(path)
    from ..trace import parse_trace
    from ..traffic.request import OneRequest, request_trace

    req, resp = spec.request, spec.response
    one = OneRequest(f"{req.get('method') or 'GET'} {req.get('path') or '/'}",
                     _lines(req.get("headers")), req.get("body") or None,
                     int(resp.get("status") or 200), _lines(resp.get("headers")),
                     resp.get("body") or None)
    return parse_trace(request_trace(one), source="the request")


@dataclass
class Run:
    id: int
    spec: RunSpec
    data: dict[str, Any] | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "label": self.spec.label(), "error": self.error}
        if self.data is not None:
            out["summary"] = self.data["report"]["summary"]
        return out


class Runs:
    """Starts runs one at a time (a plugin VM per run) and keeps the last HISTORY of them."""

    def __init__(self, files: Files, publish: Callable[[dict[str, Any]], None]) -> None:
        self.files = files
        self.publish = publish
        self.history: OrderedDict[int, Run] = OrderedDict()
        self.ids = itertools.count(1)
        self.lock = threading.Lock()  # one run at a time: they share nothing but the CPU

    def start(self, spec: RunSpec) -> Run:
        run = Run(next(self.ids), spec)
        self.history[run.id] = run
        while len(self.history) > HISTORY:
            self.history.popitem(last=False)
        return run

    def execute(self, run: Run) -> None:
        """Replay it (in a worker thread), publishing each event, then the whole report."""
        from ..engine import ReplayOptions, replay
        from ..errors import PwcliError
        from ..html.report import report_data
        from ..plugin import load_plugin
        from ..eventline import event_record

        self.publish({"type": "started", "id": run.id, "label": run.spec.label()})

        def on_event(ev: Any) -> None:
            self.publish({"type": "event", "id": run.id, "event": event_record(ev)})

        with self.lock:
            try:
                spec = run.spec
                plugin = load_plugin(str(self.files.resolve(spec.plugin, PLUGIN_SUFFIXES)))
                trace = traffic(spec, self.files)
                options = ReplayOptions(runtime=spec.runtime, root_id=spec.root_id or None,
                                        configuration=spec.configuration.encode() or None)
                result = replay(plugin, trace, options, on_event=on_event, check=False)
                run.data = report_data(result)
                run.data["title"] = spec.label()
            except PwcliError as exc:
                run.error = str(exc)
        if run.error is not None:
            self.publish({"type": "error", "id": run.id, "message": run.error})
        else:
            self.publish({"type": "done", "id": run.id, "data": run.data})
