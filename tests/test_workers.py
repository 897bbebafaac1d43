"""--workers N: connections sharded across processes; the merged report equals one worker's."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.host.effects import QueueReady
from pwcli.host.host import Host, HostOptions
from pwcli import workers
from pwcli.plugin import load_plugin
from pwcli.workers import RemoteSharedState, SharedServer, _Manager

ROOT = Path(__file__).resolve().parent.parent
MYPROJECT = str(ROOT / "example" / "myproject.wasm")
GO = str(ROOT / "example" / "go_wasip1.wasm")


def http_packets(streams: int, per_conn: int = 1) -> list[dict[str, Any]]:
    """``streams`` request/response pairs on streams // per_conn connections (keep-alive)."""
    out = []
    for i in range(streams):
        port = 2000 + i // per_conn
        out.append({"sip": "10.1.0.2", "sp": port, "dip": "10.0.0.1", "dp": 80, "method": "GET",
                    "uri_path": f"/i/{i}", "headers": {"user-agent": f"ua/{i}"},
                    "forward_direction": True, "delta_ms": 1})
        out.append({"sip": "10.0.0.1", "sp": 80, "dip": "10.1.0.2", "dp": port,
                    "forward_direction": False, "body": f"b{i}", "delta_ms": 2})
    return out


def replay(path: Path, *extra: str, fmt: str = "json", wasm: str = MYPROJECT) -> Any:
    result = CliRunner().invoke(main, ["replay", str(path), "--wasm", wasm, "--format", fmt,
                                       *extra])
    assert result.exit_code in (0, 1), result.output
    return result


@pytest.mark.parametrize("workers", ["2", "3"])
def test_merged_report_equals_one_workers(tmp_path: Path, workers: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(http_packets(24, per_conn=2)))  # 12 connections, 2 streams each
    one = replay(path)
    many = replay(path, "--workers", workers)
    assert many.stdout == one.stdout
    report = json.loads(many.stdout)
    assert [s["context_id"] for s in report["streams"]] == list(range(2, 26))
    assert report["summary"]["streams"] == 24


def test_interleaved_streams_and_the_example_traces(tmp_path: Path) -> None:
    # Requests of different connections interleaved before their responses.
    pk = http_packets(6)
    order = [0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11]
    path = tmp_path / "i.json"
    path.write_text(json.dumps([pk[i] for i in order]))
    assert replay(path, "--workers", "2").stdout == replay(path).stdout
    for trace, wasm in (("http_4pkts.json", "myproject.wasm"), ("rust_tcp.json", "rust_tcp.wasm"),
                        ("as_headers.json", "as_headers.wasm")):
        t, w = ROOT / "traces" / trace, str(ROOT / "example" / wasm)
        assert replay(t, "--workers", "2", wasm=w).stdout == replay(t, wasm=w).stdout, trace


def test_jsonl_summary_and_loop_with_workers(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in http_packets(10)) + "\n")
    one = replay(path, fmt="jsonl").stdout.splitlines()
    many = replay(path, "--workers", "2", fmt="jsonl").stdout.splitlines()
    assert many[-1] == one[-1]  # the summary
    assert sorted(many) == sorted(one)  # every event line, grouped by worker
    looped = json.loads(replay(path, "--workers", "2", "--loop", "2").stdout)
    single = json.loads(replay(path, "--loop", "2").stdout)
    assert looped == single


def test_expect_blocks_need_one_worker(tmp_path: Path) -> None:
    pk = http_packets(1)
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"packets": pk, "expect": {"failure": None}}))
    result = CliRunner().invoke(main, ["replay", str(path), "--wasm", MYPROJECT, "--workers", "2"])
    assert result.exit_code == 2
    assert "run them with --workers 1" in result.stderr


@pytest.fixture()
def server() -> Any:
    manager = _Manager(ctx=multiprocessing.get_context("spawn"))
    manager.start()
    try:
        yield manager.SharedServer()  # type: ignore[attr-defined]
    finally:
        manager.shutdown()


def test_shared_data_spans_workers_with_cas(server: Any) -> None:
    a, b = RemoteSharedState(server, 0), RemoteSharedState(server, 1)
    assert a.get_data(b"k") is None
    assert a.set_data(b"k", b"1", 0)
    value, cas = b.get_data(b"k")
    assert value == b"1"
    assert b.set_data(b"k", b"2", cas)
    assert not a.set_data(b"k", b"3", cas)  # a stale CAS from the other worker: mismatch
    assert a.get_data(b"k") == (b"2", cas + 1)


def test_a_queue_filled_by_one_worker_is_ready_in_its_owner(server: Any) -> None:
    owner = Host("0.2.1", HostOptions(vm_id="vm"))
    a, b = RemoteSharedState(server, 0), RemoteSharedState(server, 1)
    qid = a.register_queue("vm", b"q", owner)
    assert b.resolve_queue("vm", b"q") == qid
    assert b.enqueue(qid, b"hello")
    assert owner.effects == []  # not yet: the owner polls between packets
    a.poll()
    assert owner.effects == [QueueReady(qid)]
    assert a.dequeue(qid) == (True, b"hello")
    assert a.dequeue(qid) == (True, None)
    assert b.dequeue(999) == (False, None)


def test_the_local_shared_state_keeps_its_behaviour() -> None:
    server = SharedServer()
    assert server.register_queue("vm", b"q", 3) == 1
    assert server.enqueue(1, b"x") and server.ready(3) == [1] and server.ready(3) == []
    assert not server.enqueue(2, b"x")


def test_the_shared_state_server_starts_only_for_a_plugin_that_can_reach_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not workers.shares_state(load_plugin(MYPROJECT))
    assert workers.shares_state(load_plugin(GO))  # it imports proxy_get/set_shared_data
    started: list[str] = []
    start = _Manager.start
    monkeypatch.setattr(_Manager, "start", lambda self: (started.append("server"), start(self))[1])
    path = tmp_path / "t.json"
    path.write_text(json.dumps(http_packets(4)))
    assert replay(path, "--workers", "2").stdout == replay(path).stdout
    assert started == []
    shared = replay(ROOT / "traces" / "go_headers.json", "--workers", "2", wasm=GO)
    assert started == ["server"]
    sets = [e for s in json.loads(shared.stdout)["streams"] for e in s["events"]
            if e["name"] == "proxy_set_shared_data"]
    assert [e["result"] for e in sets] == ["OK", "OK"]  # through the server, each from its worker
