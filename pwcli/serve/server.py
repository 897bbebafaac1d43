"""``pwcli serve``: proxy-wasm-cli's gRPC control API over pwcli's engine, one ``Session`` per VM.

The four original RPCs answer as the original's clients expect; pwcli's replies carry more (new
fields) and pwcli adds RPCs: the report so far, a stream of events, deleting a VM, the runtimes.
Errors are the CLI's one-line messages in ``error`` with ``success`` false; a bad packet names its
index and field, and nothing of that call is applied.
"""

from __future__ import annotations

import json
import queue
import signal
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from .. import runtimes
from ..engine import ReplayOptions, Session
from ..errors import PwcliError, TraceError
from ..plugin import load_plugin
from ..report import dumps, to_json
from ..trace import parse_packet, parse_trace
from . import proxy_wasm_cli_pb2 as pb
from . import proxy_wasm_cli_pb2_grpc as pb_grpc
from .packets import to_trace_packet
from .registry import KEEP_STREAMS, Registry, Vm

RUNTIMES = {pb.WasmLaunchInstanceRequest.WASM_RUNTIME_WASMEDGE: "wasmedge",
            pb.WasmLaunchInstanceRequest.WASM_RUNTIME_WAMR: "wamr",
            pb.WasmLaunchInstanceRequest.WASM_RUNTIME_WASMTIME: "wasmtime"}
# The original's enum order; INVALID is debug, as the original treats it.
LEVELS = {pb.WASM_LOGLEVEL_INVALID: "debug", pb.WASM_LOGLEVEL_WARNING: "warn",
          pb.WASM_LOGLEVEL_TRACE: "trace", pb.WASM_LOGLEVEL_DEBUG: "debug",
          pb.WASM_LOGLEVEL_INFO: "info", pb.WASM_LOGLEVEL_ERROR: "error",
          pb.WASM_LOGLEVEL_CRITICAL: "critical"}
SOURCE = "SendTraffic"


class WasmHost(pb_grpc.WasmHostServicer):
    def __init__(self, plugins_dir: Path, keep_streams: int = KEEP_STREAMS) -> None:
        self.plugins_dir = plugins_dir.resolve()
        self.registry = Registry(keep_streams)

    # -- the original's four RPCs -----------------------------------------------------------
    def LaunchInstance(self, req: Any, context: Any) -> Any:  # noqa: N802 - the proto's name
        key = f"{req.root_id}:{req.name}"
        try:
            if not req.name:
                raise PwcliError("name: a VM needs a name")
            wasm = self._plugin_path(req.wasm_file)
            runtime = RUNTIMES.get(req.runtime, runtimes.DEFAULT)
            trace = parse_trace({"packets": [], **json.loads(req.trace_settings_json or "{}")},
                                source="trace_settings_json")
            options = ReplayOptions(
                runtime=runtime, root_id=req.root_id, vm_id=req.name, plugin_name=req.name,
                configuration=req.configuration.encode() if req.configuration else None,
                vm_configuration=req.vm_configuration.encode() if req.vm_configuration else None,
                environment={kv.key: kv.value for kv in req.environment} or None,
                log_level=LEVELS.get(req.log_level, "debug"), seed=req.seed)
            vm = Vm(key, req.root_id, req.name, req.wasm_file, runtime, req.log_level)
            if not self.registry.add(vm):
                raise PwcliError(f"VM {key} exists: delete it first")
            try:
                vm.session = Session(load_plugin(wasm), options, trace, vm.publish)
            except BaseException:
                self.registry.remove(key)
                raise
        except (PwcliError, ValueError) as exc:
            return pb.WasmLaunchInstanceReply(success=False, error=_line(exc))
        return pb.WasmLaunchInstanceReply(success=True, key=key, runtime=runtime,
                                          report_json=_report(vm.session))

    def ListInstances(self, req: Any, context: Any) -> Any:  # noqa: N802
        reply = pb.WasmListInstanceReply()
        for vm in self.registry.listing(req.filter):
            ts = Timestamp()
            ts.FromNanoseconds(int(vm.created * 1e9))
            reply.vms.add(key=vm.key, project=vm.project, name=vm.name, create_ts=ts,
                          runtime=vm.runtime, wasm_file=vm.wasm_file, log_level=vm.log_level,
                          packets=vm.session.index, streams=vm.session.engine.stream_count,
                          virtual_ms=vm.session.now_ms)
        return reply

    def SendTraffic(self, req: Any, context: Any) -> Any:  # noqa: N802
        vms = self.registry.select(req.project, req.vm_name)
        if not vms:
            return pb.WasmSendTrafficReply(success=False, error=_missing(req.project, req.vm_name))
        try:
            packets = [parse_packet(to_trace_packet(p), i, SOURCE)
                       for i, p in enumerate(req.packets)]
        except TraceError as exc:
            return pb.WasmSendTrafficReply(success=False, error=str(exc))
        reply = pb.WasmSendTrafficReply(success=True, packets=len(packets))
        with self.registry.using(vms):
            try:
                for vm in vms:  # every packet pairs on every VM, or nothing is applied
                    probe = vm.session.flow.fork(SOURCE)
                    for i, p in enumerate(packets):
                        probe.check(i, p)
            except TraceError as exc:
                return pb.WasmSendTrafficReply(success=False, error=str(exc))
            for vm in vms:
                reply.vm_keys.append(vm.key)
                s = vm.session
                open_before = {r.index for r in s.streams if r.ctx in s.engine.active}
                first_new = s.engine.stream_count
                for p in packets:
                    s.send(p)
                for r in s.streams:
                    if r.index >= first_new or r.index in open_before:
                        _outcome(reply.streams.add(), vm.key, s.stream_view(r))
                s.forget_finished(self.registry.keep_streams)
        return reply

    def WasmSettings(self, req: Any, context: Any) -> Any:  # noqa: N802
        vms = self.registry.select(req.project, req.vm_name)
        if not vms:
            return pb.WasmSettingsReply(success=False, error=_missing(req.project, req.vm_name))
        with self.registry.using(vms):
            for vm in vms:
                vm.session.set_log_level(LEVELS.get(req.log_level, "debug"))
                vm.log_level = req.log_level
        return pb.WasmSettingsReply(success=True, log_level=req.log_level)

    # -- pwcli's RPCs -------------------------------------------------------------------------
    def GetReport(self, req: Any, context: Any) -> Any:  # noqa: N802
        vms = self.registry.select(req.project, req.vm_name) if req.vm_name else []
        if not vms:
            return pb.WasmReportReply(success=False, error=_missing(req.project, req.vm_name))
        with self.registry.using(vms):
            return pb.WasmReportReply(success=True, report_json=_report(vms[0].session))

    def StreamEvents(self, req: Any, context: Any) -> Any:  # noqa: N802
        vms = self.registry.select(req.project, req.vm_name)
        if not vms:
            context.abort(grpc.StatusCode.NOT_FOUND, _missing(req.project, req.vm_name))
        q: queue.Queue[Any] = queue.Queue()
        keyed = [(vm, _Tagged(q, vm.key)) for vm in vms]
        for vm, tagged in keyed:
            vm.subscribers.append(tagged)
        try:
            while context.is_active():
                try:
                    key, line = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if line is None:  # the VM was deleted
                    if all(vm.key not in self.registry.vms for vm in vms):
                        return
                    continue
                yield pb.WasmEvent(vm_key=key, json=line)
        finally:
            for vm, tagged in keyed:
                if tagged in vm.subscribers:
                    vm.subscribers.remove(tagged)

    def DeleteInstance(self, req: Any, context: Any) -> Any:  # noqa: N802
        vms = self.registry.select(req.project, req.vm_name) if req.vm_name else []
        if not vms:
            return pb.WasmDeleteReply(success=False, error=_missing(req.project, req.vm_name))
        vm = vms[0]
        with self.registry.using([vm]):
            self.registry.remove(vm.key)
            report = dumps(to_json(vm.session.close()))
            for q in list(vm.subscribers):
                q.put(None)
        return pb.WasmDeleteReply(success=True, report_json=report)

    def ListRuntimes(self, req: Any, context: Any) -> Any:  # noqa: N802
        reply = pb.WasmRuntimesReply()
        for name in runtimes.BACKENDS:
            info = runtimes.describe(name)
            reply.runtimes.add(name=name, available=info.available, version=info.version or "",
                               detail=info.detail or "")
        return reply

    # -- helpers ------------------------------------------------------------------------------
    def _plugin_path(self, wasm_file: str) -> Path:
        if not wasm_file:
            raise PwcliError("wasm_file: which plugin to run (a path inside --plugins-dir)")
        path = (self.plugins_dir / wasm_file).resolve()
        if not path.is_relative_to(self.plugins_dir):
            raise PwcliError(f"wasm_file {wasm_file}: outside the plugins directory")
        return path

    def close_all(self, report_dir: Path | None) -> list[str]:
        """Close every VM (SIGINT/SIGTERM); each final report goes to ``report_dir``."""
        written = []
        for vm in list(self.registry.vms.values()):
            with self.registry.using([vm]):
                self.registry.remove(vm.key)
                report = dumps(to_json(vm.session.close()))
                for q in list(vm.subscribers):
                    q.put(None)
            if report_dir is not None:
                path = report_dir / f"{vm.key.replace(':', '_').replace('/', '_')}.json"
                path.write_text(report)
                written.append(str(path))
        return written


class _Tagged:
    """A subscriber's queue that tags each line with its VM's key."""

    def __init__(self, q: queue.Queue[Any], key: str) -> None:
        self.q, self.key = q, key

    def put(self, line: str | None) -> None:
        self.q.put((self.key, line))


def _outcome(out: Any, key: str, r: Any) -> None:
    out.vm_key, out.index, out.client, out.server = key, r.index, r.client, r.server
    out.flags.extend(f for f in r.flags if f != "open")
    out.open = "open" in r.flags
    for n, v in r.request_headers:
        out.request_headers.add(key=n, value=v)
    for n, v in r.response_headers:
        out.response_headers.add(key=n, value=v)
    if r.local_reply is not None:
        out.local_reply_status = r.local_reply.status
    if r.failure is not None:
        out.failure = r.failure.kind


def _report(session: Session) -> str:
    return dumps(to_json(session.snapshot()))


def _missing(project: str, name: str) -> str:
    return f"no VM {project}:{name}" if name else f"no VM in project {project!r}"


def _line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def serve(host: str, port: int, plugins_dir: Path, *, report_dir: Path | None = None,
          max_request_mb: int = 64, keep_streams: int = KEEP_STREAMS,
          ready: Any = None, stop: threading.Event | None = None) -> list[str]:
    """Run the server until SIGINT/SIGTERM (or ``stop``); returns the reports written."""
    cap = max_request_mb << 20
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", cap)])
    host_impl = WasmHost(plugins_dir, keep_streams)
    pb_grpc.add_WasmHostServicer_to_server(host_impl, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise PwcliError(f"cannot listen on {host}:{port} (in use, or not an address here)")
    server.start()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    if ready is not None:
        ready(bound)
    stop.wait()
    server.stop(grace=10).wait()  # calls in flight finish; new ones are refused
    return host_impl.close_all(report_dir)
