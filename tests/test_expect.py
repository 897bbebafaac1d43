"""Expect blocks in the trace: the format, its errors, and what a failed expectation prints."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import pwcli
from pwcli.cli import main
from pwcli.expect import Outcome

from .conftest import EXAMPLES, SEED_PACKETS, TRACES, wat_module, write_wasm

ROOT = Path(__file__).resolve().parent.parent
PASSING = ROOT / "tests" / "data" / "expect" / "http_4pkts_expect.json"
MYPROJECT = EXAMPLES / "myproject.wasm"
S0 = "stream #0 10.0.0.2:50124 -> 10.0.0.1:443"
S1 = "stream #1 10.0.0.2:50125 -> 10.0.0.1:443"


def outcome(wasm: Path, trace: Any, **options: Any) -> Outcome:
    run = pwcli.replay(pwcli.load_plugin(wasm), pwcli.parse_trace(trace, source="t.json"),
                       pwcli.ReplayOptions(**options))
    assert run.expectations is not None
    return run.expectations


def passing() -> dict[str, Any]:
    return json.loads(PASSING.read_text())


def test_passing_file_exits_0_after_the_table() -> None:
    result = CliRunner().invoke(main, ["replay", str(PASSING), "--wasm", str(MYPROJECT)])
    assert result.exit_code == 0
    assert result.stdout.endswith("exit 0\nexpect: 21 checks passed\n")


def test_failing_expectations_exit_1_with_what_was_expected_and_what_happened(
    tmp_path: Path,
) -> None:
    raw = passing()
    raw["packets"][0]["expect"]["request"]["headers"]["user-agent"] = True
    raw["packets"][1]["expect"]["actions"]["response_body"] = ["pause"]
    raw["expect"]["streams"]["2"]["response"]["headers"]["x-wasm-custom"] = "BAR"
    raw["expect"]["logs"][0]["count"] = 3
    path = tmp_path / "t.json"
    path.write_text(json.dumps(raw))
    result = CliRunner().invoke(main, ["replay", str(path), "--wasm", str(MYPROJECT),
                                       "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["summary"]["exit_status"] == 0  # the report is unchanged
    assert result.stderr == (
        "expect: 4 of 21 checks failed\n"
        f"  packet 0 ({S0}): request header user-agent: expected present, got absent\n"
        f"  packet 1 ({S0}): action of proxy_on_response_body: expected [pause], "
        "got [continue, continue]\n"
        f"  {S1} (opened by packet 2): response header x-wasm-custom: expected \"BAR\", "
        'got "FOO"\n'
        '  run: log [info] /^onDone /: expected 3 matching lines, got 2: [info] "onDone 2"; '
        '[info] "onDone 3"\n'
    )


def test_packet_expectations_see_the_stream_as_it_stands_after_that_packet() -> None:
    raw = passing()
    raw["packets"][0]["expect"] = {"response": {"headers": {"x-wasm-custom": "FOO"}},
                                   "logs": [{"regex": "onResponseHeaders"}]}
    raw["packets"][1]["expect"] = {"request": {"headers": {"a": False}, "body": "x"}}
    out = outcome(MYPROJECT, raw)
    assert out.failures == [
        f"packet 0 ({S0}): response header x-wasm-custom: expected \"FOO\", got absent",
        f"packet 0 ({S0}): log /onResponseHeaders/: expected at least one matching line, got "
        'none (lines: [info] "called WASM plugin onCreate 2 from client 10.0.0.2:50124 port '
        '50124"; [info] "onRequestHeaders 2 headers=9 end_of_stream=1"; [info] ":authority -> '
        '10.0.0.1" (+10 more))',
        f'packet 1 ({S0}): request header a: expected absent, got "B2"',
        f'packet 1 ({S0}): request body: expected "x", got ""',
    ]


def test_local_reply_and_header_regex_on_the_deny_plugin() -> None:
    raw = json.loads((TRACES / "as_deny.json").read_text())
    raw["expect"] = {"streams": {
        "0": {"local_reply": False, "response": {"headers": {":status": "200"}}},
        "2": {"local_reply": {"status": 403, "body": "denied by as_deny",
                              "details": "as_deny_denied", "headers": {"x-denied": "1"}},
              "response": {"headers": {":status": "403", "x-denied": {"regex": "^[0-9]+$"}}},
              "actions": {"proxy_on_request_headers": "pause"}},
    }}
    out = outcome(EXAMPLES / "as_deny.wasm", raw)
    assert (out.checks, out.failures) == (6, [])
    raw["expect"]["streams"]["0"]["local_reply"] = {"status": 403}
    raw["expect"]["streams"]["2"]["local_reply"] = {"status": 401, "body": {"regex": "^ok"}}
    raw["expect"]["streams"]["2"]["actions"] = {"request_headers": "continue"}
    out = outcome(EXAMPLES / "as_deny.wasm", raw)
    deny = "stream #1 10.0.0.2:50211 -> 10.0.0.1:80 (opened by packet 2)"
    assert out.failures == [
        "stream #0 10.0.0.2:50210 -> 10.0.0.1:80 (opened by packet 0): local reply: expected one "
        "with status 403, got none",
        f"{deny}: local reply status: expected 401, got 403",
        f'{deny}: local reply body: expected to match /^ok/, got "denied by as_deny"',
        f"{deny}: action of proxy_on_request_headers: expected continue, got "
        "stop_all_iteration_and_watermark",
    ]


def test_http_calls_on_the_httpcall_plugin() -> None:
    raw = json.loads((TRACES / "as_httpcall.json").read_text())
    raw["packets"][0]["expect"] = {
        "http_calls": [{"upstream": "auth_cluster", "headers": {":path": "/auth",
                                                                ":method": "GET"}, "count": 1}],
        "actions": {"request_headers": "pause"},
        "request": {"headers": {"x-auth": False}},
    }
    raw["expect"] = {"streams": {"0": {"request": {"headers": {"x-auth": "ok"}}}},
                     "http_calls": [{"upstream": "auth_cluster", "body": ""}]}
    out = outcome(EXAMPLES / "as_httpcall.wasm", raw)
    assert (out.checks, out.failures) == (5, [])
    raw["expect"]["http_calls"] = [{"upstream": "auth_cluster", "headers": {":path": "/x"}},
                                   {"upstream": "other"}]
    out = outcome(EXAMPLES / "as_httpcall.wasm", raw)
    assert out.failures == [
        'run: http call to auth_cluster: expected at least one matching, got header :path: '
        'expected "/x", got "/auth"',
        "run: http call to other: expected at least one, got none (calls to: auth_cluster)",
    ]


METRIC_AND_TRAP = """
(import "env" "proxy_define_metric" (func $def (param i32 i32 i32 i32) (result i32)))
(import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
(data (i32.const 100) "requests")
(func (export "proxy_on_context_create") (param i32 i32))
(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
  (drop (call $def (i32.const 0) (i32.const 100) (i32.const 8) (i32.const 200)))
  (drop (call $inc (i32.load (i32.const 200)) (i64.const 1)))
  i32.const 0)
(func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) unreachable)
"""


def test_metrics_and_failures(tmp_path: Path) -> None:
    wasm = write_wasm(tmp_path, wat_module(METRIC_AND_TRAP))
    packets = copy.deepcopy(SEED_PACKETS)
    packets[0]["expect"] = {"metrics": {"requests": 1}, "failure": False}
    trace = {"packets": packets, "expect": {
        "streams": {"0": {"failure": {"kind": "unreachable",
                                      "callback": "proxy_on_response_headers"},
                          "local_reply": {"status": 503, "details": "wasm_fail_stream"}}},
        "metrics": {"requests": 1},
        "failure": {"kind": "unreachable"},
    }}
    out = outcome(wasm, trace)
    assert (out.checks, out.failures) == (6, [])
    packets[0]["expect"] = {"metrics": {"requests": 2, "missing": 0},
                            "failure": {"kind": "timeout"}}
    trace["expect"]["failure"] = False
    out = outcome(wasm, trace)
    seed = "packet 0 (stream #0 10.0.0.2:50124 -> 10.0.0.1:443)"
    assert out.failures == [
        f"{seed}: metric requests: expected 2, got 1",
        f"{seed}: metric missing: expected 0, got no such metric",
        f"{seed}: failure: expected timeout, got none",
        "run: failure: expected none, got unreachable in proxy_on_response_headers",
    ]


def test_a_pinned_failure_passes_on_the_command_line(tmp_path: Path) -> None:
    wasm = write_wasm(tmp_path, wat_module(METRIC_AND_TRAP))
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps({"packets": SEED_PACKETS,
                                 "expect": {"failure": {"kind": "unreachable"}}}))
    result = CliRunner().invoke(main, ["replay", str(trace), "--wasm", str(wasm)])
    assert result.exit_code == 0
    assert result.stdout.endswith("expect: 1 check passed\n")


@pytest.mark.parametrize(
    ("where", "expect", "message"),
    [
        ("packet", {"respons": {}},
         "t.json: packet 0: expect: unknown key \"respons\" (did you mean 'response'?)"),
        ("packet", {"response": {"headers": {"x": 3}}},
         't.json: packet 0: expect.response.headers.x: expected "value", ["value", ...], '
         'true (present), false (absent) or {"regex": "..."}'),
        ("packet", {"logs": [{"regex": "("}]},
         't.json: packet 0: expect.logs[0].regex: invalid regular expression "(": missing ), '
         "unterminated subpattern at position 0"),
        ("packet", {"logs": [{"regex": "x", "level": "loud"}]},
         "t.json: packet 0: expect.logs[0].level: Input should be 'trace', 'debug', 'info', "
         "'warn', 'error' or 'critical', got \"loud\""),
        ("packet", {"actions": {"request_header": "continue"}},
         't.json: packet 0: expect.actions: unknown callback "request_header" (one of: '
         "request_headers, request_body, request_trailers, response_headers, response_body, "
         "response_trailers, new_connection, downstream_data, upstream_data)"),
        ("packet", {"actions": {"request_headers": "stop"}},
         "t.json: packet 0: expect.actions: request_headers: expected an action or a list of "
         "actions among: continue, pause, stop_iteration, continue_and_end_stream, "
         "stop_all_iteration_and_buffer, stop_all_iteration_and_watermark, "
         "stop_iteration_and_buffer, stop_iteration_and_watermark, stop_iteration_no_buffer"),
        ("packet", {"local_reply": True},
         "t.json: packet 0: expect.local_reply: must be an object or false (none)"),
        ("packet", {"metrics": {"m": "1"}},
         "t.json: packet 0: expect.metrics.m: expected a value (integer) or histogram samples "
         "(list of integers)"),
        ("trace", {"streams": {"1": {}}},
         "t.json: expect.streams.1: packet 1 does not open a stream (streams open at packets 0)"),
        ("trace", {"streams": {"0": {"failure": {"kinds": "x"}}}},
         "t.json: expect.streams.0.failure: unknown key \"kinds\" (did you mean 'kind'?)"),
    ],
)
def test_bad_expectations_are_trace_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           where: str, expect: dict[str, Any],
                                           message: str) -> None:
    packets = copy.deepcopy(SEED_PACKETS)
    raw: dict[str, Any] = {"packets": packets}
    if where == "packet":
        packets[0]["expect"] = expect
    else:
        raw["expect"] = expect
    (tmp_path / "t.json").write_text(json.dumps(raw))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["replay", "t.json", "--wasm", str(MYPROJECT)])
    assert (result.exit_code, result.stderr) == (2, message + "\n")


def test_schema_includes_expectations() -> None:
    result = CliRunner().invoke(main, ["schema"])
    schema = json.loads(result.stdout)
    defs = schema["$defs"]
    names = {"StreamExpect", "TraceExpect", "MessageExpect", "LogExpect", "HttpCallExpect"}
    assert names <= set(defs)
    assert defs["Packet"]["properties"]["expect"]["anyOf"][0] == {"$ref": "#/$defs/StreamExpect"}
    header = defs["MessageExpect"]["properties"]["headers"]["anyOf"][0]["additionalProperties"]
    assert header == {"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
        {"type": "boolean"},
        {"type": "object", "properties": {"regex": {"type": "string"}}, "required": ["regex"],
         "additionalProperties": False},
    ]}
    local_reply = defs["StreamExpect"]["properties"]["local_reply"]["anyOf"]
    assert local_reply[1:] == [{"const": False}, {"type": "null"}]
    assert "absent" not in local_reply[0]["properties"]
