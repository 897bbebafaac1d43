"""Large traces read incrementally: JSON Lines and big JSON arrays, errors met mid-way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.errors import TraceError
from pwcli.plugin import load_plugin
from pwcli.engine import ReplayOptions, Session, replay
from pwcli.eventline import event_line
from pwcli.report import summary
from pwcli.trace import FlowChecker, load_trace, parse_trace
from pwcli.tracestream import StreamedTrace, iter_array, iter_jsonl, open_trace

ROOT = Path(__file__).resolve().parent.parent
MYPROJECT = ROOT / "example" / "myproject.wasm"


def packets(streams: int) -> list[dict[str, Any]]:
    out = []
    for i in range(streams):
        port = 1024 + i
        out.append({"sip": "10.1.0.2", "sp": port, "dip": "10.0.0.1", "dp": 80, "method": "GET",
                    "uri_path": f"/i/{i}", "headers": {"x-n": str(i)}, "forward_direction": True,
                    "delta_ms": 1})
        out.append({"sip": "10.0.0.1", "sp": 80, "dip": "10.1.0.2", "dp": port,
                    "forward_direction": False, "body": "ok", "delta_ms": 1})
    return out


def write_jsonl(path: Path, items: list[Any], header: dict[str, Any] | None = None) -> Path:
    lines = ([json.dumps(header)] if header else []) + [json.dumps(p) for p in items]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_array(path: Path, items: list[Any]) -> Path:
    path.write_text("[\n" + ",\n".join(json.dumps(p) for p in items) + "\n]\n")
    return path


def test_jsonl_and_arrays_read_incrementally_give_the_same_packets(tmp_path: Path) -> None:
    items = packets(1500)  # 3,000 packets
    full = parse_trace(items, source="x").packets
    jsonl = write_jsonl(tmp_path / "t.jsonl", items)
    array = write_array(tmp_path / "t.json", items)
    assert list(iter_jsonl(str(jsonl))) == full
    # Small chunks: packets cut at every possible place by the chunk boundary.
    assert list(iter_array(str(array), chunk=97)) == full
    assert list(iter_array(str(array), chunk=1 << 20)) == full


def test_which_traces_stream(tmp_path: Path) -> None:
    items = packets(3)
    assert isinstance(open_trace(write_jsonl(tmp_path / "a.jsonl", items)), StreamedTrace)
    assert isinstance(open_trace(write_jsonl(tmp_path / "a.ndjson", items)), StreamedTrace)
    # By content: a whole object on the first line, another on the next.
    assert isinstance(open_trace(write_jsonl(tmp_path / "a.log", items)), StreamedTrace)
    small = write_array(tmp_path / "a.json", items)
    assert not isinstance(open_trace(small), StreamedTrace)  # small arrays load as before
    assert isinstance(open_trace(small, stream=True), StreamedTrace)
    obj = tmp_path / "o.json"
    obj.write_text(json.dumps({"packets": items}))
    assert not isinstance(open_trace(obj), StreamedTrace)


def test_a_jsonl_header_line_carries_the_trace_settings(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "h.jsonl", packets(2),
                       header={"plugin": {"root_id": "r1"}, "properties": {"a.b": "c"}})
    tr = open_trace(path)
    assert tr.plugin is not None and tr.plugin.root_id == "r1"
    assert tr.properties == {"a.b": "c"}
    assert len(list(tr.packets)) == 4


def test_errors_name_the_packet_and_the_jsonl_line(tmp_path: Path) -> None:
    items = packets(5)
    items[7] = {**items[7], "sp": 70000}
    path = write_jsonl(tmp_path / "bad.jsonl", items)
    with pytest.raises(TraceError) as err:
        list(iter_jsonl(str(path)))
    assert str(err.value) == f"{path}:8: packet 7: sp: port must be 0-65535, got 70000"
    # The same packet in an array: the same words as load_trace.
    arr = write_array(tmp_path / "bad.json", items)
    with pytest.raises(TraceError) as err2:
        list(iter_array(str(arr), chunk=50))
    with pytest.raises(TraceError) as err3:
        load_trace(arr)
    want = f"{arr}: packet 7: sp: port must be 0-65535, got 70000"
    assert str(err2.value) == str(err3.value) == want


def test_json_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "syntax.jsonl"
    path.write_text(json.dumps(packets(1)[0]) + "\n{\"sip\": \n")
    with pytest.raises(TraceError) as err:
        list(iter_jsonl(str(path)))
    assert str(err.value).startswith(f"{path}:2: packet 1: invalid JSON at column ")
    arr = tmp_path / "syntax.json"
    arr.write_text("[\n" + json.dumps(packets(1)[0]) + ",\n {\"sip\" 1}\n]")
    with pytest.raises(TraceError) as err2:
        list(iter_array(str(arr), chunk=16))
    assert str(err2.value) == (f"{arr}: packet 1: invalid JSON at line 3 column 9: "
                               "Expecting ':' delimiter")


def test_flow_checker_matches_check_flow_and_forgets_closed_connections() -> None:
    tr = parse_trace(packets(50), source="x")
    flow = FlowChecker("x")
    ids = [flow.check(i, p) for i, p in enumerate(tr.packets)]
    assert ids == [1 + i // 2 for i in range(100)]
    assert flow.live == {}  # every request answered: no pairing state left
    bad = packets(2)
    bad[3], bad[2] = bad[2], bad[3]  # a response before its request
    with pytest.raises(TraceError, match="packet 2: a response with no request"):
        parse_trace(bad, source="x")


def _replay(trace: Any, streaming: bool) -> tuple[list[str], dict[str, Any], Any]:
    lines: list[str] = []
    run = replay(load_plugin(MYPROJECT), trace, ReplayOptions(),
                 on_event=lambda ev: lines.append(event_line(ev)),
                 on_stream=(lambda r: None) if streaming else None)
    return lines, summary(run), run


def test_streaming_mode_prints_what_the_default_mode_prints(tmp_path: Path) -> None:
    items = packets(1500)
    path = write_jsonl(tmp_path / "t.jsonl", items)
    lines_a, sum_a, run_a = _replay(parse_trace(items, source=str(path)), streaming=False)
    lines_b, sum_b, run_b = _replay(open_trace(path), streaming=True)
    assert lines_a == lines_b
    assert sum_a == sum_b
    assert sum_b["streams"] == 1500 and sum_b["packets"] == 3000
    assert run_b.streams == [] and run_b.events == []  # nothing kept


def test_streamed_replay_drops_streams_and_idle_connections(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", packets(1500))
    trace = open_trace(path)
    seen = []
    session = Session(load_plugin(MYPROJECT), ReplayOptions(), trace,
                      on_stream=lambda r: seen.append(r.index))
    session.feed(trace.packets)
    session.close()
    assert sorted(seen) == list(range(1500))
    engine = session.engine
    assert engine.demux.conns == {} and engine.streams == [] and engine.active == {}
    assert len(engine.vm.host.contexts) == 1  # the root context only


def test_a_bad_packet_mid_way_stops_after_reporting_what_ran(tmp_path: Path) -> None:
    items = packets(10)
    items[10] = {**items[10], "method": "BAD METHOD"}
    path = write_jsonl(tmp_path / "bad.jsonl", items)
    result = CliRunner().invoke(main, ["replay", str(path), "--wasm", str(MYPROJECT),
                                       "--format", "jsonl"])
    assert result.exit_code == 2
    out = result.stdout.strip().splitlines()
    last = json.loads(out[-1])["summary"]
    assert last["packets"] == 10 and last["streams"] == 5 and last["completed"] == 5
    assert result.stderr.strip().splitlines()[-1] == (
        f"{path}:11: packet 10: method: not an HTTP method token: \"BAD METHOD\"")


def test_a_flow_error_mid_way_in_a_streamed_trace(tmp_path: Path) -> None:
    items = packets(3)
    items.insert(4, {**items[1]})  # a second response with no request on its connection
    path = write_jsonl(tmp_path / "flow.jsonl", items)
    result = CliRunner().invoke(main, ["replay", str(path), "--wasm", str(MYPROJECT),
                                       "--format", "json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["summary"]["packets"] == 4
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"{path}: packet 4: a response with no request on its connection")


def test_jsonl_cli_output_equals_an_array_trace(tmp_path: Path) -> None:
    items = packets(20)
    a = CliRunner().invoke(main, ["replay", str(write_jsonl(tmp_path / "t.jsonl", items)),
                                  "--wasm", str(MYPROJECT), "--format", "json"])
    b = CliRunner().invoke(main, ["replay", str(write_array(tmp_path / "t.json", items)),
                                  "--wasm", str(MYPROJECT), "--format", "json"])
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout
