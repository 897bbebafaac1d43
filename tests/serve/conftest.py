"""A pwcli serve in a thread, on loopback and an ephemeral port, for each test module."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from pwcli.serve import proxy_wasm_cli_pb2 as pb
from pwcli.serve import proxy_wasm_cli_pb2_grpc as pb_grpc
from pwcli.serve.server import serve

from ..conftest import EXAMPLES


@dataclass
class Server:
    address: str
    stub: pb_grpc.WasmHostStub
    stop: threading.Event
    thread: threading.Thread
    reports: list[str]
    report_dir: Path


def start_server(tmp: Path, plugins_dir: Path = EXAMPLES, keep_streams: int = 1000) -> Server:
    ready = threading.Event()
    port: list[int] = []
    stop = threading.Event()
    reports: list[str] = []
    report_dir = tmp / "reports"
    report_dir.mkdir(exist_ok=True)

    def run() -> None:
        reports.extend(serve("127.0.0.1", 0, plugins_dir, report_dir=report_dir,
                             keep_streams=keep_streams,
                             ready=lambda p: (port.append(p), ready.set()), stop=stop))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the server did not start"
    address = f"127.0.0.1:{port[0]}"
    stub = pb_grpc.WasmHostStub(grpc.insecure_channel(address))
    return Server(address, stub, stop, thread, reports, report_dir)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path)
    yield s
    s.stop.set()
    s.thread.join(30)


def launch(stub: pb_grpc.WasmHostStub, key: str, wasm: str = "myproject.wasm",
           **kw: object) -> None:
    project, _, name = key.partition(":")
    reply = stub.LaunchInstance(pb.WasmLaunchInstanceRequest(name=name, root_id=project,
                                                             wasm_file=wasm, **kw))
    assert reply.success, reply.error
