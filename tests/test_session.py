"""The incremental API: Session.send, advance, http, snapshot, close; replay() as its loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pwcli
from pwcli.report import to_json

from .host.guest import Guest, pairs

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example" / "myproject.wasm"
TRACE = ROOT / "traces" / "http_4pkts.json"


def _canonical(run: pwcli.Run) -> str:
    report = to_json(run)
    report.pop("wall_seconds", None)
    return json.dumps(report, sort_keys=True)


def test_http_returns_the_stream_with_the_plugins_mutations() -> None:
    with pwcli.Session(EXAMPLE) as s:
        r = s.http({"method": "GET", "uri_path": "/a", "headers": {"h1": "v1"}},
                   {"status": 200, "body": "hi"})
        assert r.index == 0 and r.client == "10.0.0.1:50001" and r.server == "10.0.0.2:80"
        assert ("a", "B2") in r.request_headers
        assert r.response.header("x-wasm-custom") == "FOO"
        assert r.response.body == b"hi"
        r2 = s.http({"method": "GET", "uri_path": "/b"})
        assert r2.index == 1 and r2.client == "10.0.0.1:50002"
        assert r2.request.header("a") == "B2" and r2.response.headers is None  # no answer yet
        assert r2.flags == ["open"]
    run = s.run
    assert run is not None and len(run.streams) == 2
    assert "incomplete" in run.streams[1].flags  # closed before its response arrived


def test_packets_sent_one_by_one_give_the_replay_report() -> None:
    plugin = pwcli.load_plugin(EXAMPLE)
    trace = pwcli.load_trace(TRACE)
    whole = pwcli.replay(plugin, trace)
    raw = json.loads(TRACE.read_text())
    s = pwcli.Session(plugin, trace=trace)
    for packet in raw[:2]:
        s.send(packet)  # plain dicts, validated as they come
    assert s.now_ms == 5.0
    for packet in raw[2:]:
        s.send(packet)
    assert s.now_ms == 30.0
    assert _canonical(s.close()) == _canonical(whole)
    assert s.close() is s.run  # closing twice returns the same Run
    with pytest.raises(RuntimeError, match="closed"):
        s.send(raw[0])


def test_a_bad_packet_names_its_index_and_field_and_changes_nothing() -> None:
    s = pwcli.Session(EXAMPLE)
    raw = json.loads(TRACE.read_text())
    s.send(raw[0])
    with pytest.raises(pwcli.TraceError) as bad:
        s.send({**raw[2], "dp": "not a port"})
    assert str(bad.value).startswith("<session>: packet 1: dp: ")
    with pytest.raises(pwcli.TraceError, match="packet 1: a response with no request"):
        s.send({**raw[1], "dp": 1})  # answers a connection that has no request
    assert s.now_ms == 0 and len(s.streams) == 1
    s.send(raw[1])  # the same index again: the rejected packets left no trace
    run = s.close()
    assert [st.first_packet for st in run.streams] == [0]
    assert run.streams[0].response.header("x-wasm-custom") == "FOO"


def test_snapshot_shows_an_open_stream_as_it_stands() -> None:
    with pwcli.Session(EXAMPLE) as s:
        s.send({"sip": "10.0.0.2", "sp": 1, "dip": "10.0.0.1", "dp": 80, "forward_direction": True,
                "method": "POST", "uri_path": "/", "body": "part", "end_stream": False})
        snap = s.snapshot()
        (st,) = snap.streams
        assert st.flags == ["open"]
        assert st.request.header("a") == "B2" and st.request.body == b"part"
        assert s.streams[0].flags == []  # the snapshot is a copy
        assert pwcli.to_json(snap)["streams"][0]["flags"] == ["open"]


def test_advance_fires_ticks_on_the_virtual_clock(tmp_path: Path) -> None:
    g = Guest()
    g.on("proxy_on_vm_start", "(drop (call $proxy_set_tick_period_milliseconds (i32.const 100)))",
         ret=1)
    g.on("proxy_on_tick", "")
    path = tmp_path / "tick.wasm"
    path.write_bytes(g.wasm())
    with pwcli.Session(path) as s:
        s.advance(250)
        assert s.now_ms == 250
        assert [e.t_ns // 1_000_000 for e in s.events if e.name == "proxy_on_tick"] == [100, 200]
        s.advance(50)
        assert len([e for e in s.events if e.name == "proxy_on_tick"]) == 3


def test_set_log_level_applies_to_later_logs(tmp_path: Path) -> None:
    g = Guest()
    g.on("proxy_on_request_headers", f"(drop (call $proxy_log (i32.const 1) {g.s('dbg')}))")
    path = tmp_path / "log.wasm"
    path.write_bytes(g.wasm())
    with pwcli.Session(path) as s:
        s.http({"method": "GET", "uri_path": "/"}, {})
        s.set_log_level("debug")
        s.http({"method": "GET", "uri_path": "/"}, {})
        with pytest.raises(ValueError, match="log level must be one of"):
            s.set_log_level("loud")
    assert s.run is not None and s.run.logs() == [("debug", "dbg")]
    assert s.run.logs(stream=1) == [("debug", "dbg")]


def test_a_local_reply_sent_from_an_http_call_answer_is_sent(tmp_path: Path) -> None:
    """Envoy's Context::sendLocalResponse acts once the callback returns, whichever callback it is:
    a reply sent from proxy_on_http_call_response answers the paused request."""
    g = Guest()
    headers = pairs((":method", "GET"), (":path", "/check"), (":authority", "auth"))
    g.on("proxy_on_request_headers",
         f"(drop (call $proxy_http_call {g.s('auth')} {g.s(headers)} {g.s('')} {g.s('')}"
         " (i32.const 1000) (i32.const 0x800)))", ret=1)
    g.on("proxy_on_http_call_response",
         "(drop (call $proxy_set_effective_context (i32.const 2)))"
         f"(drop (call $proxy_send_local_response (i32.const 403) {g.s('denied')} {g.s('no')}"
         f" {g.s(b'')} (i32.const -1)))")
    path = tmp_path / "deny.wasm"
    path.write_bytes(g.wasm())
    trace = pwcli.parse_trace({"packets": [], "upstreams": {"auth": {"status": 200,
                                                                     "delay_ms": 2}}})
    with pwcli.Session(path, trace=trace) as s:
        r = s.http({"method": "GET", "uri_path": "/"}, {"status": 200, "delta_ms": 5})
    assert r.local_reply is not None and r.local_reply.status == 403
    assert r.response.headers == [(b":status", b"403"), (b"content-length", b"2"),
                                  (b"content-type", b"text/plain")]
    assert r.response.body == b"no" and r.flags == [] and r.undelivered == [1]
    assert r.request.body == b"" and "stalled" not in r.flags


def test_the_pytest_fixture_hands_a_session(pwcli_session) -> None:  # type: ignore[no-untyped-def]
    s = pwcli_session(EXAMPLE)
    r = s.http({"method": "GET", "uri_path": "/"}, {"status": 200})
    assert r.response.header("x-wasm-custom") == "FOO"


def test_forget_finished_keeps_a_long_lived_session_bounded() -> None:
    with pwcli.Session(EXAMPLE) as s:
        for _ in range(30):
            s.http({"method": "GET", "uri_path": "/"}, {"status": 200})
            s.forget_finished(5)
        assert len(s.streams) <= 10 and s.forgotten >= 20
        assert len(s.engine.demux.conns) <= 1  # idle connections are dropped with their streams
        assert {e.stream for e in s.events} - {None} <= {r.index for r in s.streams}
        snap = s.snapshot()
        assert snap.warnings[-1] == (f"{s.forgotten} earlier finished streams are not kept "
                                     "(a long-lived session keeps its most recent ones)")
        r = s.http({"method": "GET", "uri_path": "/"}, {"status": 200})
        assert r.index == 30 and r.response.header("x-wasm-custom") == "FOO"
