"""Real captures (tests/data/captures, made by make_captures.py there with tcpdump and mitmproxy)
replayed through the example plugin: the streams and header mutations a hand-written trace of the
same traffic gives, and the exact packets the conversion derives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.engine import ReplayOptions, replay
from pwcli.plugin import load_plugin
from pwcli.trace import load_trace
from pwcli.traffic.convert import open_capture

from ..conftest import EXAMPLES

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
PLUGIN = EXAMPLES / "myproject.wasm"


CLOCK = "x-envoy-upstream-service-time"  # when the response head came: a clock value


def _streams(trace: Any) -> list[dict[str, Any]]:
    """What the plugin did to each stream, without clock values."""
    run = replay(load_plugin(str(PLUGIN)), trace, ReplayOptions())
    out = []
    for s in run.streams:
        out.append({
            "kind": s.kind, "client": s.client, "server": s.server,
            "request": s.request_headers, "request_body": s.request_body,
            "response": [h for h in s.response_headers if h[0] != CLOCK],
            "response_body": s.response_body,
            "changes": [(c.map, c.op, c.name, c.before, c.after) for c in s.changes],
            "local_reply": s.local_reply, "failure": s.failure, "flags": s.flags,
            "downstream": s.downstream, "upstream": s.upstream,
        })
    return out


@pytest.mark.parametrize("name", ["http_lo.pcap", "http_lo.pcapng"])
def test_a_capture_replays_as_the_hand_written_trace_of_its_traffic(name: str) -> None:
    expected = _streams(load_trace(CAPTURES / "http_lo.equivalent.json"))
    got = _streams(open_capture(str(CAPTURES / name)))
    assert got == expected
    assert [s["kind"] for s in got] == ["http"] * 4 + ["tcp"]
    assert [s["changes"] for s in got[:4]] == [[
        ("request_headers", "add", "a", None, "B2"),
        ("response_headers", "add", "x-wasm-custom", None, "FOO")]] * 4
    assert ("connection", "close") not in got[3]["request"]  # Envoy takes it off first
    assert got[4]["downstream"] == b"PING" and got[4]["upstream"] == b"PONG"


def test_a_segment_the_capture_lacks_is_found_and_said() -> None:
    """tcpdump on "any" (Linux cooked v2) missed the client's PING and the server's last FIN of
    the second connection: its peer's acknowledgements show both."""
    capture = open_capture(str(CAPTURES / "http_sll2.pcap"))
    assert capture is not None
    got = _streams(capture)
    expected = _streams(load_trace(CAPTURES / "http_lo.equivalent.json"))[:4]
    for s in (*got, *expected):  # captured in a second run: other ports and dates, same traffic
        s.pop("client"), s.pop("server")
        for key in ("request", "response"):
            s[key] = [(n, v) for n, v in s[key] if n not in (":authority", "date")]
    assert got == expected  # the four HTTP streams whole; the missed FIN loses no bytes
    assert capture.notes == [
        "connection 3 (127.0.0.1:35546 -> 127.0.0.1:40791): the capture is missing a segment "
        "(acknowledged, never seen) at byte 0 of the client's stream; the rest of the "
        "connection is skipped"]
    assert capture.summary().endswith("4 HTTP streams from 3 connections; 1 skipped (said above)")


def test_the_conversion_keeps_five_tuples_timing_and_message_boundaries() -> None:
    capture = open_capture(str(CAPTURES / "http_lo.pcap"))
    assert capture is not None
    packets = list(capture.dicts())
    assert len(packets) == 16
    assert packets[0] == {
        "sip": "127.0.0.1", "sp": 39256, "dip": "127.0.0.1", "dp": 37003,
        "forward_direction": True, "delta_ms": 0.0, "method": "GET",
        "uri_path": "/hello?name=pwcli", "end_stream": True,
        "headers": [["Host", "127.0.0.1:37003"], ["Accept-Encoding", "identity"],
                    ["User-Agent", "capture/1"], ["X-Trace", "1"]]}
    # tcpdump: request at 12.836428, response head at 12.837048, its body at 12.837080
    assert [p["delta_ms"] for p in packets[1:3]] == [0.62, 0.032]
    assert packets[1]["end_stream"] is False and packets[2] == {
        "sip": "127.0.0.1", "sp": 37003, "dip": "127.0.0.1", "dp": 39256,
        "forward_direction": False, "delta_ms": 0.032, "end_stream": True,
        "body": "Hello from the upstream"}
    # from the first request (12.836428) to the TCP client's FIN (12.925212)
    assert round(sum(p["delta_ms"] for p in packets), 3) == 88.784
    assert packets[-1] == {"sip": "127.0.0.1", "sp": 53432, "dip": "127.0.0.1", "dp": 35091,
                           "forward_direction": True, "delta_ms": packets[-1]["delta_ms"],
                           "close": "fin"}
    assert capture.summary().endswith("4 HTTP streams and 1 TCP connection from 3 connections")


def test_a_session_and_its_har_replay_to_the_same_streams_and_mutations() -> None:
    """The same browser-like session through mitmproxy: tcpdump's packets and mitmproxy's HAR."""
    pcap = _streams(open_capture(str(CAPTURES / "session.pcap")))
    har = _streams(open_capture(str(CAPTURES / "session.har")))
    assert len(pcap) == len(har) == 4
    for a, b in zip(pcap, har, strict=True):
        assert a["changes"] == b["changes"] == [
            ("request_headers", "add", "a", None, "B2"),
            ("response_headers", "add", "x-wasm-custom", None, "FOO")]
        for key in ("request", "response"):  # x-request-id is the stream's own
            assert [h for h in a[key] if h[0] != "x-request-id"] == [
                h for h in b[key] if h[0] != "x-request-id"]
        assert (a["request_body"], a["response_body"]) == (b["request_body"], b["response_body"])
    assert [dict(s["request"])[":path"] for s in pcap] == [
        "/hello?name=pwcli", "/echo", "/chunked", "/hello"]
    assert pcap[1]["request_body"] == b'{"a": 1}' and pcap[2]["response_body"] == b"first second"
    # keep-alive: three streams on the first connection in the capture; the HAR has no
    # connection ids (mitmproxy writes none), so each of its entries has a client of its own
    assert len({s["client"] for s in pcap}) == 2
    assert [s["client"] for s in har] == [f"127.0.0.1:{p}" for p in (40000, 40001, 40002, 40003)]


def test_ipv6_pipelining_100_continue_chunks_and_tls() -> None:
    capture = open_capture(str(CAPTURES / "extras.pcap"))
    assert capture is not None
    packets = list(capture.dicts())
    assert [(p["sip"], p["forward_direction"], p.get("method"), p.get("status"))
            for p in packets if "method" in p or "status" in p] == [
        ("::1", True, "GET", None), ("::1", True, "GET", None),  # pipelined: one write
        ("::1", False, None, 200), ("::1", False, None, 200),
        ("::1", True, "POST", None), ("::1", False, None, 201)]  # no 100 Continue
    chunked = [p.get("body") for p in packets[5:8]]
    assert chunked == ["first ", "second", None] and packets[7]["end_stream"] is True
    assert capture.notes == [
        "connection 3 (127.0.0.1:36574 -> 127.0.0.1:39789): TLS (encrypted: replay its "
        "plaintext as a trace or a HAR); skipped"]
    streams = _streams(capture)
    assert [s["response_body"] for s in streams] == [
        b"Hello from the upstream", b"first second", b"hello"]
    assert all(len(s["changes"]) == 2 for s in streams)


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output + result.stderr
    return result


def test_replay_takes_a_capture_by_its_content_and_says_what_it_held(tmp_path: Path) -> None:
    renamed = tmp_path / "traffic.bin"
    renamed.write_bytes((CAPTURES / "extras.pcap").read_bytes())
    result = _cli("replay", str(renamed), "--wasm", str(PLUGIN), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["summary"]["streams"] == 3
    assert result.stderr.splitlines() == [
        f"{renamed}: connection 3 (127.0.0.1:36574 -> 127.0.0.1:39789): TLS (encrypted: replay "
        "its plaintext as a trace or a HAR); skipped",
        f"{renamed}: 3 HTTP streams from 3 connections; 1 skipped (said above)"]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_convert_writes_a_trace_that_replays_as_the_capture(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"trace{suffix}"
    result = _cli("convert", str(CAPTURES / "http_lo.pcap"), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1] == f"wrote 16 packets to {out}"
    text = out.read_text()
    assert text.startswith("[\n  {") if suffix == ".json" else len(text.splitlines()) == 16
    via_file = _cli("replay", str(out), "--wasm", str(PLUGIN), "--format", "json")
    direct = _cli("replay", str(CAPTURES / "http_lo.pcap"), "--wasm", str(PLUGIN),
                  "--format", "json")
    assert json.loads(via_file.stdout)["streams"] == json.loads(direct.stdout)["streams"]


def test_workers_share_out_a_capture() -> None:
    one = _cli("replay", str(CAPTURES / "http_lo.pcap"), "--wasm", str(PLUGIN), "--format", "json")
    two = _cli("replay", str(CAPTURES / "http_lo.pcap"), "--wasm", str(PLUGIN), "--format", "json",
               "--workers", "2")
    assert two.exit_code == 0
    assert json.loads(one.stdout)["summary"] == json.loads(two.stdout)["summary"]
    assert json.loads(one.stdout)["streams"] == json.loads(two.stdout)["streams"]


@pytest.mark.parametrize(("expr", "kept"), [
    ("port 35091", ["tcp"]),
    ("not port 35091", ["http"] * 4),
    ("src port 39266 or (host 127.0.0.1 and dst port 35091)", ["http", "tcp"]),
    ("net 10.0.0.0/8", []),
])
def test_filter_keeps_whole_connections(expr: str, kept: list[str]) -> None:
    result = _cli("replay", str(CAPTURES / "http_lo.pcap"), "--wasm", str(PLUGIN),
                  "--format", "json", "--filter", expr)
    assert result.exit_code == 0, result.stderr
    streams = json.loads(result.stdout)["streams"]
    assert [s["kind"] for s in streams] == kept
    assert all(s["flags"] == [] for s in streams)  # each kept stream is whole
