"""HAR entries and the one-request form, as traces; and what they replay to."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.traffic.convert import open_capture

from ..conftest import EXAMPLES

PLUGIN = str(EXAMPLES / "myproject.wasm")


def _entry(url: str, started: str, *, method: str = "GET", version: str = "HTTP/1.1",
           headers: list[tuple[str, str]] = (), status: int | None = 200,
           connection: str | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {
        "startedDateTime": started,
        "request": {"method": method, "url": url, "httpVersion": version,
                    "headers": [{"name": n, "value": v} for n, v in headers]},
        "timings": {"blocked": 1, "dns": -1, "connect": 2, "send": 1, "wait": 10, "receive": 3},
        "serverIPAddress": "192.0.2.10",
    }
    if status is not None:
        e["response"] = {"status": status,
                         "headers": [{"name": "content-type", "value": "text/plain"}],
                         "content": {"size": 2, "text": "hi"}}
    if connection is not None:
        e["connection"] = connection
    return e


def _har(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    path = tmp_path / "s.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "t", "version": "1"},
                                        "entries": entries}}))
    return path


def _dicts(path: Path) -> list[dict[str, Any]]:
    capture = open_capture(str(path))
    assert capture is not None and capture.kind == "har"
    return list(capture.dicts())


def test_entries_become_streams_with_their_addresses_and_timing(tmp_path: Path) -> None:
    path = _har(tmp_path, [
        _entry("https://example.com/a?x=1", "2026-01-01T00:00:00.000Z", connection="7"),
        _entry("http://example.com:8080/b", "2026-01-01T00:00:00.100+00:00", method="POST",
               headers=[("Content-Type", "application/octet-stream")]),
    ])
    entries = json.loads(path.read_text())
    entries["log"]["entries"][1]["request"]["postData"] = {
        "mimeType": "application/octet-stream", "encoding": "base64",
        "text": base64.b64encode(b"\xff\x00").decode()}
    path.write_text(json.dumps(entries))
    assert _dicts(path) == [
        {"sip": "127.0.0.1", "sp": 40000, "dip": "192.0.2.10", "dp": 443,
         "forward_direction": True, "delta_ms": 0.0, "scheme": "https", "method": "GET",
         "uri_path": "/a?x=1", "headers": [], "host": "example.com"},
        {"sip": "192.0.2.10", "sp": 443, "dip": "127.0.0.1", "dp": 40000,
         "forward_direction": False, "delta_ms": 11.0, "scheme": "https", "status": 200,
         "headers": [["content-type", "text/plain"]], "body": "hi"},
        {"sip": "127.0.0.1", "sp": 40001, "dip": "192.0.2.10", "dp": 8080,
         "forward_direction": True, "delta_ms": 89.0, "scheme": "http", "method": "POST",
         "uri_path": "/b", "headers": [["Content-Type", "application/octet-stream"]],
         "host": "example.com:8080", "body": {"base64": "/wA="}},
        {"sip": "192.0.2.10", "sp": 8080, "dip": "127.0.0.1", "dp": 40001,
         "forward_direction": False, "delta_ms": 11.0, "scheme": "http", "status": 200,
         "headers": [["content-type", "text/plain"]], "body": "hi"},
    ]


def test_a_shared_connection_keeps_its_responses_in_request_order(tmp_path: Path) -> None:
    """HTTP/2 multiplexing: the second answer arrives first in the HAR; pwcli pairs in order."""
    h2 = [(":method", "GET"), (":authority", "example.com"), (":scheme", "https"),
          (":path", "/slow"), ("accept", "*/*")]
    slow = _entry("https://example.com/slow", "2026-01-01T00:00:00Z", version="h2",
                  headers=h2, connection="1")
    slow["timings"]["wait"] = 50
    fast = _entry("https://example.com/fast", "2026-01-01T00:00:00.005Z", version="h2",
                  headers=[(n, "/fast" if n == ":path" else v) for n, v in h2], connection="1")
    packets = _dicts(_har(tmp_path, [slow, fast]))
    assert [(p["sp"] if p["forward_direction"] else p["dp"], p.get("uri_path"), p["delta_ms"])
            for p in packets] == [(40000, "/slow", 0.0), (40000, "/fast", 5.0),
                                  (40000, None, 46.0), (40000, None, 0.0)]
    assert packets[0]["headers"][0] == [":method", "GET"]  # HTTP/2 keeps its pseudo-headers
    result = CliRunner().invoke(main, ["replay", str(_har(tmp_path, [slow, fast])), "--wasm",
                                       PLUGIN, "--format", "json"])
    streams = json.loads(result.stdout)["streams"]
    assert [dict(s["request"]["headers"])[":path"] for s in streams] == ["/slow", "/fast"]
    assert all(s["response"]["headers"] for s in streams)


def test_an_aborted_entry_is_a_request_only(tmp_path: Path) -> None:
    path = _har(tmp_path, [_entry("http://example.com/gone", "2026-01-01T00:00:00Z", status=0),
                           _entry("http://example.com/none", "2026-01-01T00:00:01Z", status=None)])
    assert [p["forward_direction"] for p in _dicts(path)] == [True, True]
    result = CliRunner().invoke(main, ["replay", str(path), "--wasm", PLUGIN, "--format", "json"])
    assert json.loads(result.stdout)["summary"]["incomplete"] == 2


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "s.har: not a HAR file: not JSON (line 1, column 2: Expecting property name "
                  "enclosed in double quotes)\n"),
    ('{"log": {"entries": [{"startedDateTime": "2026-01-01T00:00:00Z"}]}}',
     "s.har: entries[0].request: field required\n"),
    ('{"log": {"entries": [{"startedDateTime": "soon", "request": {"method": "GET", '
     '"url": "http://x/", "headers": []}}]}}',
     "s.har: entries[0].startedDateTime: Input should be a valid datetime or date, input is "
     "too short\n"),
    ('{"log": {"version": "1.2"}}', "s.har: not a HAR file: no log.entries list\n"),
])
def test_a_broken_har_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   content: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.har").write_text(content)
    result = CliRunner().invoke(main, ["replay", "s.har", "--wasm", PLUGIN])
    assert (result.exit_code, result.stderr, result.stdout) == (2, message, "")


def test_one_request_from_the_command_line(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"k": 1}')
    result = CliRunner().invoke(main, [
        "replay", "--wasm", PLUGIN, "--format", "json", "--request", "POST /api?x=1",
        "-H", "content-type: application/json", "-H", "x-b: 2", "-d", f"@{body}",
        "--response-status", "201", "-R", "server: upstream", "--response-body", "made"])
    assert result.exit_code == 0, result.stderr
    (s,) = json.loads(result.stdout)["streams"]
    assert s["request"]["headers"][:6] == [
        [":authority", "10.0.0.1"], [":path", "/api?x=1"], [":method", "POST"],
        [":scheme", "http"], ["content-type", "application/json"], ["x-b", "2"]]
    assert s["request"]["body"] == '{"k": 1}' and s["response"]["body"] == "made"
    assert s["response"]["headers"][:2] == [[":status", "201"], ["server", "upstream"]]
    assert [(c["map"], c["name"], c["after"]) for c in s["header_changes"]] == [
        ("request_headers", "a", "B2"), ("response_headers", "x-wasm-custom", "FOO")]


def test_convert_prints_the_one_request_trace() -> None:
    result = CliRunner().invoke(main, ["convert", "--request", "GET https://example.com:8443/x",
                                       "--format", "jsonl"])
    assert result.exit_code == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"sip": "10.0.0.2", "sp": 40000, "dip": "10.0.0.1", "dp": 8443, "forward_direction": True,
         "delta_ms": 0, "scheme": "https", "method": "GET", "uri_path": "/x", "headers": [],
         "host": "example.com:8443"},
        {"sip": "10.0.0.1", "sp": 8443, "dip": "10.0.0.2", "dp": 40000,
         "forward_direction": False, "delta_ms": 0, "scheme": "https", "status": 200,
         "headers": []}]


@pytest.mark.parametrize(("args", "message"), [
    (["--request", "GET"], "--request 'GET': expected 'METHOD TARGET', as in 'GET /path?x=1' or "
                           "'POST https://example.com/api'"),
    (["--request", "GET x"], "--request 'GET x': the target is a path ('/...') or a URL"),
    (["--request", "GET ftp://h/x"], "--request 'GET ftp://h/x': only http:// and https:// URLs"),
    (["--request", "GET /", "-H", "nocolon"], "-H 'nocolon': expected 'name: value'"),
    (["--request", "GET /", "-d", "@/no/such"], "-d @/no/such: cannot read /no/such: No such "
                                                 "file or directory"),
    (["--request", "GET /", "--filter", "port 80"], "Error: --filter selects connections of a "
                                                     "capture, not of --request"),
    (["-H", "a: b"], "Error: -H, -d, -R and --response-body go with --request"),
    ([], "Error: give a TRACE (a trace, pcap, pcapng or HAR file) or --request"),
])
def test_bad_one_request_options_are_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["replay", "--wasm", PLUGIN, *args])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in result.stderr
