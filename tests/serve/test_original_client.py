"""A client written against the original proxy-wasm-cli .proto (only its messages and fields,
compiled here) drives pwcli serve: the issue's "done when"."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pwcli.serve import proxy_wasm_cli_pb2 as pwcli_pb
from pwcli.serve.regenerate import HERE, PROTO

from ..conftest import TRACES
from .conftest import Server


def original_proto() -> str:
    """pwcli's .proto with every pwcli addition taken out: the original's interface."""
    text = (HERE / PROTO).read_text()
    text = re.sub(r"\n  // pwcli's additions\n(  rpc .*\n)+", "\n", text)
    text = re.sub(r"\n  // pwcli\n(  .*\n)+?(?=})", "\n", text)
    text = text[: text.index("// pwcli's additions\n\nmessage WasmReportRequest")]
    return re.sub(r"\nmessage StreamOutcome \{.*?\n\}\n", "\n", text, flags=re.S)


CLIENT = r'''
"""A client of the original proto (run in its own process: its messages have pwcli's names)."""
import json, sys
import grpc
import proxy_wasm_cli_pb2 as pb
import proxy_wasm_cli_pb2_grpc as pb_grpc

address, trace = sys.argv[1], sys.argv[2]
out = {}
out["rpcs"] = [m.name for m in pb.DESCRIPTOR.services_by_name["WasmHost"].methods]
out["packet_fields"] = {f.name: f.number for f in pb.wasmHTTPPacket.DESCRIPTOR.fields}
stub = pb_grpc.WasmHostStub(grpc.insecure_channel(address))
r = stub.LaunchInstance(pb.WasmLaunchInstanceRequest(
    name="vm1", root_id="", wasm_file="myproject.wasm", log_level=pb.WASM_LOGLEVEL_INFO,
    runtime=pb.WasmLaunchInstanceRequest.WASM_RUNTIME_NONE))
out["launch"] = [r.success, r.error]
listing = stub.ListInstances(pb.WasmListInstanceRequest(filter=""))
out["list"] = [[v.key, v.project, v.name, v.create_ts.seconds > 0] for v in listing.vms]


def as_the_original_client_sends(p):
    # every method HTTP_GET (responses too), sp/dp as integers, query_params and headers in
    # order, delta_ms as in the file, no body, no host
    msg = pb.wasmHTTPPacket(sip=p["sip"], dip=p["dip"], sp=int(p["sp"]), dp=int(p["dp"]),
                            uri_path=p["uri_path"], method=pb.HTTP_GET,
                            forward_direction=p["forward_direction"], delta_ms=p.get("delta_ms", 0),
                            scheme=pb.SCHEME_HTTPS if p["scheme"] == "https" else pb.SCHEME_HTTP)
    for k, v in p.get("query_params", {}).items():
        msg.query_params.add(key=k, value=v)
    for k, v in p.get("headers", {}).items():
        msg.headers.add(key=k, value=v)
    return msg


raw = json.load(open(trace))
out["send"] = []
for part in (raw[:2], raw[2:]):
    r = stub.SendTraffic(pb.WasmSendTrafficRequest(
        project="", vm_name="vm1", packets=[as_the_original_client_sends(p) for p in part]))
    out["send"].append([r.success, r.error])
r = stub.WasmSettings(pb.WasmSettingsRequest(project="", vm_name="vm1",
                                             log_level=pb.WASM_LOGLEVEL_DEBUG))
out["settings"] = [r.success, r.log_level == pb.WASM_LOGLEVEL_DEBUG]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def original_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The original proto compiled, and the client script beside it."""
    out = tmp_path_factory.mktemp("original")
    (out / "proxy_wasm_cli.proto").write_text(original_proto())
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    assert protoc.main(["protoc", f"-I{out}", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", str(out / "proxy_wasm_cli.proto")]) == 0
    (out / "client.py").write_text(CLIENT)
    return out / "client.py"


def test_an_original_client_launches_lists_sends_in_two_calls_and_sets_the_log_level(
    original_client: Path, server: Server
) -> None:
    done = subprocess.run([sys.executable, str(original_client), server.address,
                           str(TRACES / "http_4pkts.json")], capture_output=True, text=True,
                          timeout=120, cwd=original_client.parent)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["rpcs"] == ["ListInstances", "LaunchInstance", "SendTraffic", "WasmSettings"]
    assert out["packet_fields"] == {"sip": 1, "dip": 2, "sp": 3, "dp": 4, "host": 5, "scheme": 6,
                                    "uri_path": 7, "method": 8, "query_params": 9,
                                    "headers": 10, "payload": 11, "forward_direction": 12,
                                    "delta_ms": 13}
    assert out["launch"] == [True, ""]
    assert out["list"] == [[":vm1", "", "vm1", True]]
    assert out["send"] == [[True, ""], [True, ""]]
    assert out["settings"] == [True, True]
    # The report (pwcli's RPC) shows the example's mutations on both streams.
    report = json.loads(server.stub.GetReport(pwcli_pb.WasmReportRequest(
        project="", vm_name="vm1")).report_json)
    changes = [(c["map"], c["name"], c["after"]) for s in report["streams"]
               for c in s["header_changes"]]
    assert changes == [("request_headers", "a", "B2"),
                       ("response_headers", "x-wasm-custom", "FOO")] * 2
    assert report["summary"]["packets"] == 4 and report["summary"]["end_t_ms"] == 30
    assert report["inputs"]["log_level"] == "debug"  # WasmSettings applied
