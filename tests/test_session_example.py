"""Driving a plugin packet by packet with pwcli.Session: the docs' example, as written."""

from pathlib import Path

import pwcli

ROOT = Path(__file__).parent.parent
PLUGIN = ROOT / "example" / "myproject.wasm"


def test_one_request_at_a_time():
    with pwcli.Session(PLUGIN) as s:
        r = s.http({"method": "GET", "uri_path": "/", "headers": {"user-agent": "curl"}},
                   {"status": 200, "body": "hello", "delta_ms": 5})
        assert r.request.header("a") == "B2"
        assert r.response.header("x-wasm-custom") == "FOO"
        assert s.now_ms == 5
    assert s.run.exit_code == 0 and len(s.run.streams) == 1


def test_packet_by_packet(pwcli_session):
    s = pwcli_session(PLUGIN)
    client = {"sip": "10.0.0.2", "sp": 50124, "dip": "10.0.0.1", "dp": 80}
    server = {"sip": "10.0.0.1", "sp": 80, "dip": "10.0.0.2", "dp": 50124}
    s.send({**client, "forward_direction": True, "method": "POST", "uri_path": "/upload",
            "body": "part 1", "end_stream": False})
    s.send({**client, "forward_direction": True, "body": "part 2", "delta_ms": 10})
    s.advance(100)                                  # the virtual clock: ticks and callouts fire
    snap = s.snapshot()                             # the report so far; the stream is still open
    assert snap.streams[0].flags == ["open"]
    assert snap.streams[0].request.body == b"part 1part 2"
    s.send({**server, "forward_direction": False, "body": "ok"})
    run = s.close()                                 # the Run, as pwcli.replay returns it
    assert run.streams[0].flags == []
    assert run.streams[0].response.header("x-wasm-custom") == "FOO"
    assert pwcli.to_json(run)["summary"]["streams"] == 1
