"""pwcli client against pwcli serve (and against a server with only the original's four RPCs)."""

from __future__ import annotations

import json
from concurrent import futures
from pathlib import Path

import grpc
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.serve import proxy_wasm_cli_pb2_grpc as pb_grpc
from pwcli.serve.server import WasmHost

from ..conftest import EXAMPLES, TRACES
from .conftest import Server


def cli(*args: str) -> object:
    return CliRunner().invoke(main, ["client", *args])


def test_launch_list_send_in_two_calls_settings_report_delete(server: Server,
                                                              tmp_path: Path) -> None:
    s = ["--server", server.address]
    r = cli("launch", ":v1", "myproject.wasm", *s)
    assert (r.exit_code, r.output) == (0, "launched :v1 on wasmtime\n")
    r = cli("list", *s, "--format", "json")
    assert [v["key"] for v in json.loads(r.output)] == [":v1"]
    raw = json.loads((TRACES / "http_4pkts.json").read_text())
    for i, part in enumerate((raw[:2], raw[2:])):
        path = tmp_path / f"part{i}.json"
        path.write_text(json.dumps(part))
        r = cli("send", ":v1", str(path), *s)
        assert r.exit_code == 0, r.output
        assert f"sent 2 packets to :v1\n  :v1 stream #{i} " in r.output
        assert "x-wasm-custom: FOO" in r.output
    r = cli("settings", ":v1", "debug", *s)
    assert (r.exit_code, r.output) == (0, ":v1: log level debug\n")
    r = cli("report", ":v1", *s)
    assert r.exit_code == 0
    assert r.output.count("request_headers: add a: None -> 'B2'") == 2
    assert r.output.count("response_headers: add x-wasm-custom: None -> 'FOO'") == 2
    r = cli("delete", ":v1", *s, "--format", "json")
    assert r.exit_code == 0 and json.loads(r.output)["summary"]["streams"] == 2
    r = cli("report", ":v1", *s)
    assert (r.exit_code, r.stderr) == (2, "no VM :v1\n")
    r = cli("runtimes", *s, "--format", "json")
    assert {x["name"]: x["available"] for x in json.loads(r.output)}["wasmtime"] is True


def test_bad_input_is_one_line_and_exit_2(server: Server, tmp_path: Path) -> None:
    s = ["--server", server.address]
    r = cli("launch", "v1", "myproject.wasm", *s)
    assert (r.exit_code, r.stderr) == (
        2, "v1: a VM is named project:name (its root id, a colon, its name)\n")
    r = cli("launch", ":v1", "/etc/passwd", *s)
    assert (r.exit_code, r.stderr) == (2, "wasm_file /etc/passwd: outside the plugins directory\n")
    cli("launch", ":v1", "myproject.wasm", *s)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"sip": "10.0.0.2"}]')
    r = cli("send", ":v1", str(bad), *s)
    assert r.exit_code == 2 and r.stderr.startswith(f"{bad}: packet 0: ")
    r = cli("list", "--server", "127.0.0.1:1")
    assert (r.exit_code, r.stderr) == (2, "127.0.0.1:1: no server answers there\n")


def test_against_a_server_with_only_the_original_rpcs(tmp_path: Path) -> None:
    """The original proxy-wasm-cli server has the four RPCs: the rest says so, exit 2."""
    host = WasmHost(EXAMPLES)
    handlers = {name: h for name, h in _handlers(host).items()
                if name in ("ListInstances", "LaunchInstance", "SendTraffic", "WasmSettings")}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("proxy_wasm_cli.WasmHost", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        s = ["--server", f"127.0.0.1:{port}"]
        assert cli("launch", ":v1", "myproject.wasm", *s).exit_code == 0
        r = cli("send", ":v1", str(TRACES / "http_4pkts.json"), *s)
        assert r.exit_code == 0 and "sent 4 packets" in r.output
        r = cli("report", ":v1", *s)
        assert (r.exit_code, r.stderr) == (
            2, f"127.0.0.1:{port}: the server does not offer GetReport (an original "
               "proxy-wasm-cli server has only launch, list, send, settings)\n")
    finally:
        server.stop(None)


def _handlers(host: WasmHost) -> dict[str, grpc.RpcMethodHandler]:
    """The servicer's method handlers, as add_WasmHostServicer_to_server builds them."""
    captured: dict[str, grpc.RpcMethodHandler] = {}

    class Capture:
        def add_generic_rpc_handlers(self, handlers: tuple) -> None:
            for h in handlers:
                captured.update(h._method_handlers)  # noqa: SLF001 - grpc's own handler table

        def add_registered_method_handlers(self, name: str, handlers: dict) -> None:
            captured.update(handlers)

    pb_grpc.add_WasmHostServicer_to_server(host, Capture())
    return captured


def test_send_a_capture(server: Server) -> None:
    s = ["--server", server.address]
    cli("launch", ":cap", "myproject.wasm", *s)
    capture = Path(__file__).resolve().parents[1] / "data" / "captures" / "session.har"
    r = cli("send", ":cap", str(capture), *s, "--format", "json")
    assert r.exit_code == 0, r.stderr
    streams = json.loads(r.stdout)["streams"]
    assert len(streams) == 4 and all(not st["open"] for st in streams)
    assert all(["x-wasm-custom", "FOO"] in st["response_headers"] for st in streams)
    assert r.stderr == f"{capture}: 4 HTTP streams from 4 connections\n"
