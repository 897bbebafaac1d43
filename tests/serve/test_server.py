"""pwcli serve over real gRPC on loopback: every RPC, the error paths, split traffic, concurrency,
events, a trapping plugin, shutdown with calls in flight."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

import pwcli
from pwcli.report import to_json
from pwcli.serve import proxy_wasm_cli_pb2 as pb
from pwcli.serve.packets import from_trace_packet

from ..conftest import EXAMPLES, TRACES
from .conftest import Server, launch, start_server

RAW = json.loads((TRACES / "http_4pkts.json").read_text())


def packets(raw: list[dict[str, Any]]) -> list[Any]:
    return [from_trace_packet(p) for p in raw]


def report(server: Server, key: str) -> dict[str, Any]:
    project, _, name = key.partition(":")
    reply = server.stub.GetReport(pb.WasmReportRequest(project=project, vm_name=name))
    assert reply.success, reply.error
    return json.loads(reply.report_json)


def canonical(rep: dict[str, Any]) -> dict[str, Any]:
    """A report without what differs between a server VM and a replay: its plugin inputs."""
    rep = dict(rep)
    for key in ("inputs", "plugin"):
        rep.pop(key)
    return rep


def test_traffic_split_across_calls_gives_the_replay_report(server: Server) -> None:
    launch(server.stub, ":v1")
    for part in (RAW[:1], RAW[1:3], RAW[3:]):
        reply = server.stub.SendTraffic(pb.WasmSendTrafficRequest(project="", vm_name="v1",
                                                                  packets=packets(part)))
        assert reply.success and reply.packets == len(part), reply.error
    served = report(server, ":v1")
    whole = to_json(pwcli.replay(pwcli.load_plugin(EXAMPLES / "myproject.wasm"),
                                 pwcli.load_trace(TRACES / "http_4pkts.json"),
                                 pwcli.ReplayOptions(vm_id="v1", plugin_name="v1",
                                                     log_level="debug")))
    assert canonical(served) == canonical(whole)
    assert [c["name"] for s in served["streams"] for c in s["header_changes"]] == [
        "a", "x-wasm-custom", "a", "x-wasm-custom"]


def test_a_reply_says_what_the_packets_did(server: Server) -> None:
    launch(server.stub, "p:v")
    reply = server.stub.SendTraffic(pb.WasmSendTrafficRequest(project="p", vm_name="v",
                                                              packets=packets(RAW[:1])))
    (s,) = reply.streams
    assert (s.vm_key, s.index, s.open, s.client) == ("p:v", 0, True, "10.0.0.2:50124")
    assert ("a", "B2") in [(kv.key, kv.value) for kv in s.request_headers]
    reply = server.stub.SendTraffic(pb.WasmSendTrafficRequest(project="p", vm_name="v",
                                                              packets=packets(RAW[1:2])))
    (s,) = reply.streams  # the stream that was open, now completed
    assert (s.index, s.open, list(s.flags)) == (0, False, [])
    assert ("x-wasm-custom", "FOO") in [(kv.key, kv.value) for kv in s.response_headers]


def test_a_bad_packet_names_its_index_and_field_and_applies_nothing(server: Server) -> None:
    launch(server.stub, ":v1")
    bad = packets(RAW[:2])
    bad[1].sip = "not an ip"
    reply = server.stub.SendTraffic(pb.WasmSendTrafficRequest(vm_name="v1", packets=bad))
    assert not reply.success
    assert reply.error.startswith("SendTraffic: packet 1: sip: ")
    orphan = packets(RAW[1:2])  # a response with no request: pairs nowhere
    reply = server.stub.SendTraffic(pb.WasmSendTrafficRequest(
        vm_name="v1", packets=packets(RAW[:1]) + orphan * 2))
    assert (reply.success, reply.error) == (
        False, "SendTraffic: packet 2: a response with no request on its connection "
               "(client 10.0.0.2:50124)")
    assert report(server, ":v1")["summary"]["packets"] == 0  # nothing of either call ran


def test_errors_are_one_line(server: Server, tmp_path: Path) -> None:
    stub = server.stub
    reply = stub.LaunchInstance(pb.WasmLaunchInstanceRequest(name="v", wasm_file="../README.md"))
    assert (reply.success, reply.error) == (
        False, "wasm_file ../README.md: outside the plugins directory")
    reply = stub.LaunchInstance(pb.WasmLaunchInstanceRequest(name="v", wasm_file="nope.wasm"))
    assert not reply.success and "nope.wasm" in reply.error and "\n" not in reply.error
    launch(stub, ":v")
    reply = stub.LaunchInstance(pb.WasmLaunchInstanceRequest(name="v", wasm_file="myproject.wasm"))
    assert (reply.success, reply.error) == (False, "VM :v exists: delete it first")
    for rpc, req in (("SendTraffic", pb.WasmSendTrafficRequest(project="x", vm_name="y")),
                     ("WasmSettings", pb.WasmSettingsRequest(project="x", vm_name="y")),
                     ("GetReport", pb.WasmReportRequest(project="x", vm_name="y")),
                     ("DeleteInstance", pb.WasmDeleteRequest(project="x", vm_name="y"))):
        reply = getattr(stub, rpc)(req)
        assert (reply.success, reply.error) == (False, "no VM x:y"), rpc


def test_settings_list_delete_and_runtimes(server: Server) -> None:
    stub = server.stub
    launch(stub, "p1:a")
    launch(stub, "p1:b")
    launch(stub, "p2:a")
    assert [v.key for v in stub.ListInstances(pb.WasmListInstanceRequest()).vms] == [
        "p1:a", "p1:b", "p2:a"]
    assert [v.key for v in stub.ListInstances(pb.WasmListInstanceRequest(filter="p1")).vms] == [
        "p1:a", "p1:b"]
    # An empty vm_name is every VM of that project, and only of that project.
    reply = stub.SendTraffic(pb.WasmSendTrafficRequest(project="p1", packets=packets(RAW)))
    assert list(reply.vm_keys) == ["p1:a", "p1:b"]
    assert report(server, "p2:a")["summary"]["packets"] == 0
    reply = stub.WasmSettings(pb.WasmSettingsRequest(project="p1", vm_name="a",
                                                     log_level=pb.WASM_LOGLEVEL_ERROR))
    assert reply.success and reply.log_level == pb.WASM_LOGLEVEL_ERROR
    stub.SendTraffic(pb.WasmSendTrafficRequest(project="p1", vm_name="a", packets=packets(RAW)))
    rep = report(server, "p1:a")
    assert len(rep["streams"][2]["logs"]) == 0 and len(rep["streams"][0]["logs"]) > 0
    reply = stub.DeleteInstance(pb.WasmDeleteRequest(project="p1", vm_name="a"))
    assert reply.success and json.loads(reply.report_json)["summary"]["streams"] == 4
    assert [v.key for v in stub.ListInstances(pb.WasmListInstanceRequest()).vms] == [
        "p1:b", "p2:a"]
    runtimes = {r.name: r.available for r in
                stub.ListRuntimes(pb.WasmRuntimesRequest()).runtimes}
    assert runtimes["wasmtime"] is True and set(runtimes) == {"wasmtime", "wamr", "wasmedge"}


def test_events_stream_as_they_happen(server: Server) -> None:
    launch(server.stub, ":v")
    got: list[Any] = []
    subscribed = threading.Event()
    call = server.stub.StreamEvents(pb.WasmEventsRequest(project="", vm_name="v"))

    def follow() -> None:
        for ev in call:
            got.append(ev)
            if json.loads(ev.json).get("name") == "proxy_on_delete":
                return

    t = threading.Thread(target=follow)
    t.start()
    # The subscription is in place once the server lists it: poll the VM, not a clock.
    vm = None
    while vm is None or not vm.subscribers:
        vm = _vm(server, ":v")
        subscribed.wait(0.01)
    server.stub.SendTraffic(pb.WasmSendTrafficRequest(vm_name="v", packets=packets(RAW[:2])))
    t.join(30)
    call.cancel()
    names = [json.loads(e.json)["name"] for e in got]
    assert names[0] == "proxy_on_context_create" and names[-1] == "proxy_on_delete"
    assert {e.vm_key for e in got} == {":v"}


def test_a_trapping_plugin_fails_its_streams_not_the_server(server: Server, tmp_path: Path) -> None:
    from ..test_faults import PACKETS, fault_guest

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "trap.wasm").write_bytes(fault_guest("unreachable"))
    s2 = start_server(tmp_path, plugins)
    try:
        launch(s2.stub, ":t", "trap.wasm")
        reply = s2.stub.SendTraffic(pb.WasmSendTrafficRequest(vm_name="t",
                                                              packets=packets(PACKETS[:6])))
        assert reply.success
        rep = report(s2, ":t")
        assert [s["flags"] for s in rep["streams"]] == [[], ["failed"], ["failed"]]
        assert rep["failures"][0]["kind"] == "unreachable"
        assert s2.stub.ListRuntimes(pb.WasmRuntimesRequest()).runtimes  # still serving
    finally:
        s2.stop.set()
        s2.thread.join(30)


def test_several_clients_and_vms_at_once(server: Server) -> None:
    for i in range(4):
        launch(server.stub, f"p:v{i}")
    errors: list[str] = []

    def client(i: int) -> None:
        stub = server.stub
        for _ in range(5):
            reply = stub.SendTraffic(pb.WasmSendTrafficRequest(project="p", vm_name=f"v{i % 4}",
                                                               packets=packets(RAW)))
            if not reply.success:
                errors.append(reply.error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert [report(server, f"p:v{i}")["summary"]["streams"] for i in range(4)] == [20] * 4


def test_shutdown_finishes_calls_in_flight_and_writes_reports(tmp_path: Path) -> None:
    s = start_server(tmp_path)
    launch(s.stub, ":v")
    big = packets([dict(p, sip=f"10.1.{i // 250}.{i % 250}") if p["forward_direction"]
                   else dict(p, dip=f"10.1.{i // 250}.{i % 250}")
                   for i in range(300) for p in RAW[:2]])
    future = s.stub.SendTraffic.future(pb.WasmSendTrafficRequest(vm_name="v", packets=big))
    vm = None
    while vm is None or not vm.lock.locked():  # the call is in the server
        vm = _vm(s, ":v")
        if future.done():
            break
    s.stop.set()
    reply = future.result(60)
    s.thread.join(60)
    assert reply.success and reply.packets == 600
    assert [Path(p).name for p in s.reports] == ["_v.json"]
    final = json.loads(Path(s.reports[0]).read_text())
    assert final["summary"]["streams"] == 300
    with pytest.raises(grpc.RpcError):
        s.stub.ListRuntimes(pb.WasmRuntimesRequest(), timeout=2)


def _vm(server: Server, key: str) -> Any:
    """The server's VM object (the servicer lives in this process)."""
    import gc

    from pwcli.serve.server import WasmHost

    hosts = [o for o in gc.get_objects() if isinstance(o, WasmHost)]
    for h in hosts:
        vm = h.registry.vms.get(key)
        if vm is not None:
            return vm
    return None
