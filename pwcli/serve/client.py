"""``pwcli client``: drive a server that speaks proxy-wasm-cli's protocol, pwcli's or the original.

VMs are named by their key, ``project:name`` (the project is the plugin's root id). Against the
original server only the four original RPCs exist: the others say so and exit 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import grpc

from ..errors import InputError
from . import proxy_wasm_cli_pb2 as pb
from . import proxy_wasm_cli_pb2_grpc as pb_grpc
from .packets import from_trace_packet

LEVELS = {"trace": pb.WASM_LOGLEVEL_TRACE, "debug": pb.WASM_LOGLEVEL_DEBUG,
          "info": pb.WASM_LOGLEVEL_INFO, "warn": pb.WASM_LOGLEVEL_WARNING,
          "error": pb.WASM_LOGLEVEL_ERROR, "critical": pb.WASM_LOGLEVEL_CRITICAL}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
RUNTIMES = {"wasmtime": pb.WasmLaunchInstanceRequest.WASM_RUNTIME_WASMTIME,
            "wamr": pb.WasmLaunchInstanceRequest.WASM_RUNTIME_WAMR,
            "wasmedge": pb.WasmLaunchInstanceRequest.WASM_RUNTIME_WASMEDGE}
TIMEOUT = 60.0
MAX_REPLY = 1 << 30


def split_key(key: str) -> tuple[str, str]:
    project, sep, name = key.partition(":")
    if not sep:
        raise InputError(f"{key}: a VM is named project:name (its root id, a colon, its name)")
    return project, name


class Client:
    def __init__(self, server: str) -> None:
        self.server = server
        # reports of long-lived VMs are large: no 4 MB cap on what comes back
        self.channel = grpc.insecure_channel(server, options=[
            ("grpc.max_receive_message_length", MAX_REPLY)])
        self.stub = pb_grpc.WasmHostStub(self.channel)

    def call(self, rpc: str, request: Any) -> Any:
        try:
            return getattr(self.stub, rpc)(request, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.UNIMPLEMENTED:
                raise InputError(f"{self.server}: the server does not offer {rpc} (an original "
                                 "proxy-wasm-cli server has only launch, list, send, settings)"
                                 ) from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise InputError(f"{self.server}: no server answers there") from None
            raise InputError(f"{self.server}: {rpc}: {exc.details()}") from None  # type: ignore[attr-defined]


def _check(reply: Any) -> Any:
    """A reply that says the call failed: its one-line error, exit status 2."""
    if not reply.success:
        raise InputError(reply.error)
    return reply


def _emit(fmt: str, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if fmt == "json" else text)


def _pairs(kvs: Any) -> list[list[str]]:
    return [[kv.key, kv.value] for kv in kvs]


SERVER = click.option("--server", "-s", default="127.0.0.1:50051", show_default=True,
                      help="The server, HOST:PORT.")
FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                      show_default=True)


@click.group("client")
def client_group() -> None:
    """Drive a pwcli serve (or proxy-wasm-cli) server: VMs named project:name."""


@client_group.command("launch")
@click.argument("key")
@click.argument("wasm_file")
@click.option("--config", default="", help="The plugin configuration.")
@click.option("--vm-config", default="", help="The VM configuration (pwcli servers).")
@click.option("--runtime", type=click.Choice(list(RUNTIMES)), help="Default: the server's.")
@click.option("--log-level", type=click.Choice(list(LEVELS)), default="info", show_default=True)
@SERVER
@FORMAT
def launch(key: str, wasm_file: str, config: str, vm_config: str, runtime: str | None,
           log_level: str, server: str, fmt: str) -> None:
    """Start VM KEY (project:name; the project is the root id) on WASM_FILE, a path on the server
    (inside its --plugins-dir)."""
    project, name = split_key(key)
    req = pb.WasmLaunchInstanceRequest(name=name, root_id=project, configuration=config,
                                       wasm_file=wasm_file, log_level=LEVELS[log_level],
                                       vm_configuration=vm_config)
    if runtime:
        req.runtime = RUNTIMES[runtime]
    reply = _check(Client(server).call("LaunchInstance", req))
    _emit(fmt, {"key": key, "runtime": reply.runtime}, f"launched {key}" +
          (f" on {reply.runtime}" if reply.runtime else ""))


@client_group.command("list")
@click.argument("filter", default="")
@SERVER
@FORMAT
def list_(filter: str, server: str, fmt: str) -> None:  # noqa: A002 - the original's word
    """The server's VMs (those whose key contains FILTER)."""
    reply = Client(server).call("ListInstances", pb.WasmListInstanceRequest(filter=filter))
    if reply.error:
        raise InputError(reply.error)
    vms = [{"key": v.key, "project": v.project, "name": v.name,
            "created": v.create_ts.ToJsonString(), "runtime": v.runtime,
            "packets": v.packets, "streams": v.streams} for v in reply.vms]
    lines = [f"{v['key']}  created {v['created']}" + (f"  {v['runtime']}  {v['packets']} packets"
             f"  {v['streams']} streams" if v["runtime"] else "") for v in vms]
    _emit(fmt, vms, "\n".join(lines) if lines else "no VMs")


@client_group.command("send")
@click.argument("key")
@click.argument("trace", type=click.Path(dir_okay=False))
@SERVER
@FORMAT
def send(key: str, trace: str, server: str, fmt: str) -> None:
    """Send TRACE's packets to VM KEY (project: to every VM of the project). TRACE may be a
    capture (pcap, pcapng, HAR), told by its content."""
    from ..trace import load_trace
    from ..traffic.cli import report_capture
    from ..traffic.convert import open_capture

    project, name = split_key(key)
    capture = open_capture(trace)
    source = capture.packets if capture is not None else load_trace(trace).packets
    packets = [from_trace_packet(p.model_dump(mode="json", exclude={"expect"}, by_alias=True))
               for p in source]
    report_capture(capture)  # what the capture skipped and held, on stderr
    reply = _check(Client(server).call("SendTraffic", pb.WasmSendTrafficRequest(
        project=project, vm_name=name, packets=packets)))
    streams = [{"vm": s.vm_key, "index": s.index, "client": s.client, "server": s.server,
                "flags": list(s.flags), "open": s.open,
                "request_headers": _pairs(s.request_headers),
                "response_headers": _pairs(s.response_headers),
                "local_reply_status": s.local_reply_status or None, "failure": s.failure or None}
               for s in reply.streams]
    lines = [f"sent {len(packets)} packets to {', '.join(reply.vm_keys) or key}"]
    for s in streams:
        state = "open" if s["open"] else ", ".join(s["flags"]) or "completed"
        lines.append(f"  {s['vm']} stream #{s['index']} {s['client']} -> {s['server']}: {state}")
        for side in ("request_headers", "response_headers"):
            if s[side]:
                shown = ", ".join(f"{n}: {v}" for n, v in s[side])
                lines.append(f"    {side.replace('_', ' ')}: {shown}")
    _emit(fmt, {"packets": reply.packets, "streams": streams}, "\n".join(lines))


@client_group.command("settings")
@click.argument("key")
@click.argument("level", type=click.Choice(list(LEVELS)))
@SERVER
def settings(key: str, level: str, server: str) -> None:
    """Change the log level of VM KEY (project: every VM of the project)."""
    project, name = split_key(key)
    _check(Client(server).call("WasmSettings", pb.WasmSettingsRequest(
        project=project, vm_name=name, log_level=LEVELS[level])))
    click.echo(f"{key}: log level {level}")


@client_group.command("report")
@click.argument("key")
@SERVER
@FORMAT
def report(key: str, server: str, fmt: str) -> None:
    """The report so far of VM KEY: the table, or the canonical JSON."""
    project, name = split_key(key)
    reply = _check(Client(server).call("GetReport", pb.WasmReportRequest(
        project=project, vm_name=name)))
    _print_report(reply.report_json, fmt)


@client_group.command("events")
@click.argument("key")
@SERVER
def events(key: str, server: str) -> None:
    """Follow VM KEY's events as they happen (JSON Lines; Ctrl-C stops)."""
    project, name = split_key(key)
    c = Client(server)
    try:
        for ev in c.stub.StreamEvents(pb.WasmEventsRequest(project=project, vm_name=name)):
            click.echo(json.dumps({"vm": ev.vm_key, **json.loads(ev.json)}, sort_keys=True))
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        if code == grpc.StatusCode.CANCELLED:
            return
        if code == grpc.StatusCode.UNIMPLEMENTED:
            raise InputError(f"{server}: the server does not offer StreamEvents (an original "
                             "proxy-wasm-cli server has only launch, list, send, settings)"
                             ) from None
        raise InputError(f"{server}: StreamEvents: {exc.details()}") from None  # type: ignore[attr-defined]


@client_group.command("delete")
@click.argument("key")
@SERVER
@FORMAT
def delete(key: str, server: str, fmt: str) -> None:
    """Stop VM KEY and print its final report."""
    project, name = split_key(key)
    reply = _check(Client(server).call("DeleteInstance", pb.WasmDeleteRequest(
        project=project, vm_name=name)))
    _print_report(reply.report_json, fmt)


@client_group.command("runtimes")
@SERVER
@FORMAT
def runtimes_(server: str, fmt: str) -> None:
    """The runtimes the server knows, and whether each is available there."""
    reply = Client(server).call("ListRuntimes", pb.WasmRuntimesRequest())
    rows = [{"name": r.name, "available": r.available, "version": r.version or None}
            for r in reply.runtimes]
    _emit(fmt, rows, "\n".join(f"{r['name']}: " + (f"available {r['version'] or ''}".rstrip()
                                                    if r["available"] else "not available")
                               for r in rows))


def _print_report(report_json: str, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(report_json)
        return
    report = json.loads(report_json)
    lines = []
    for st in report["streams"]:
        flags = ", ".join(st["flags"]) or "completed"
        lines.append(f"stream #{st['index']} {st['client']} -> {st['server']}: {flags}")
        for c in st["header_changes"]:
            lines.append(f"  {c['map']}: {c['op']} {c['name']}: {c['before']!r} -> {c['after']!r}")
        for side in ("request", "response"):
            if st[side]["headers"]:
                shown = ", ".join(f"{n}: {v}" for n, v in st[side]["headers"])
                lines.append(f"  final {side} headers: {shown}")
    s = report["summary"]
    lines.append(f"summary: {s['packets']} packets; {s['streams']} streams; "
                 f"{s['callbacks']} callbacks; {s['host_calls']} host calls; "
                 f"virtual time {s['end_t_ms']} ms")
    lines += [f"warning: {w}" for w in report["warnings"]]
    click.echo("\n".join(lines))
