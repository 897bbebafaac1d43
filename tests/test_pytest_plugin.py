"""Testing a plugin with pwcli's pytest fixture: the example of docs/python.md, as written."""

from pathlib import Path

import pwcli

ROOT = Path(__file__).parent.parent
PLUGIN = ROOT / "example" / "myproject.wasm"

REQUEST = {"sip": "10.0.0.2", "sp": 50124, "dip": "10.0.0.1", "dp": 443, "scheme": "https",
           "method": "GET", "uri_path": "/index.html", "headers": {"user-agent": "curl/8.5.0"},
           "forward_direction": True}
RESPONSE = {"sip": "10.0.0.1", "sp": 443, "dip": "10.0.0.2", "dp": 50124,
            "headers": {"content-type": "text/plain"}, "body": "Hello World!",
            "forward_direction": False, "delta_ms": 5}


def test_adds_headers(pwcli_replay):
    run = pwcli_replay(PLUGIN, [REQUEST, RESPONSE])
    stream = run.stream(0)
    assert stream.request.header("a") == "B2"
    assert stream.response.header("x-wasm-custom") == "FOO"
    assert stream.response_body == b"Hello World!"
    assert ("info", "UA -> curl/8.5.0") in run.logs(stream=0)
    assert run.exit_code == 0


def test_expectations_and_golden(pwcli_replay):
    # Failed expect blocks fail the test; golden= compares the JSON report with a file
    # (write it with: pytest --pwcli-update-golden).
    packets = [dict(REQUEST, expect={"request": {"headers": {"a": "B2"}}}), RESPONSE]
    run = pwcli_replay(PLUGIN, {"packets": packets, "expect": {"failure": False}})
    assert run.expectations.ok
    pwcli_replay(PLUGIN, ROOT / "traces" / "http_4pkts.json",
                 golden=ROOT / "tests" / "data" / "golden" / "http_4pkts.json")


def test_bad_input_raises(pwcli_replay):
    try:
        pwcli_replay(PLUGIN, [RESPONSE])
    except pwcli.TraceError as exc:
        assert str(exc).endswith("a response with no request on its connection "
                                 "(client 10.0.0.2:50124)")
    else:
        raise AssertionError("expected a TraceError")
