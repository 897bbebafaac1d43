"""Every example plugin replays its sample trace with the expected effects (on every runtime)."""

from __future__ import annotations

from typing import Any

import pytest

from pwcli.plugin import load_plugin
from pwcli.engine import ReplayOptions, replay
from pwcli.report import to_json
from pwcli.trace import load_trace

from .conftest import EXAMPLES, TRACES


def report(runtime: str, wasm: str, trace: str, **options: Any) -> dict[str, Any]:
    run = replay(load_plugin(EXAMPLES / wasm), load_trace(TRACES / trace),
                 ReplayOptions(runtime=runtime, **options))
    out = to_json(run)
    assert out["summary"]["exit_status"] == 0, out["failures"]
    assert out["warnings"] == []
    return out


def headers(stream: dict[str, Any], side: str) -> list[list[str]]:
    return stream[side]["headers"]


def test_as_headers(runtime: str) -> None:
    r = report(runtime, "as_headers.wasm", "as_headers.json")
    (s,) = r["streams"]
    assert headers(s, "request") == [
        [":authority", "example.com"], [":path", "/index.html"], [":method", "GET"],
        [":scheme", "http"], ["accept", "*/*"], ["x-forwarded-proto", "http"],
        ["x-request-id", "e174956c-92b5-464e-acdb-d99895aeee42"], ["x-as-added", "1"],
        ["user-agent", "pwcli-as"],
    ]
    assert headers(s, "response")[-1] == ["x-as-response", "yes"]
    assert [(c["op"], c["name"]) for c in s["header_changes"]] == [
        ("add", "x-as-added"), ("replace", "user-agent"), ("remove", "x-remove-me"),
        ("add", "x-as-response"),
    ]


def test_as_deny_local_reply_passes_through_response_callbacks(runtime: str) -> None:
    r = report(runtime, "as_deny.wasm", "as_deny.json")
    allowed, denied = r["streams"]
    assert allowed["local_reply"] is None and allowed["response"]["body"] == "ok"
    assert denied["local_reply"] == {
        "status": 403, "details": "as_deny_denied", "headers": [["x-denied", "1"]],
        "body": "denied by as_deny", "grpc_status": None, "sent_from": "proxy_on_request_headers",
    }
    assert headers(denied, "response") == [
        [":status", "403"], ["x-denied", "1"], ["content-length", "17"], ["content-type", "text/plain"],
    ]
    assert denied["undelivered_packets"] == [3]
    assert ["proxy_on_response_headers", "continue"] in denied["actions"]
    assert any("as_deny: onResponseHeaders" in log["message"] and ":status 403" in log["message"]
               for log in denied["logs"])


def test_as_httpcall_resumes_on_the_mocked_response(runtime: str) -> None:
    r = report(runtime, "as_httpcall.wasm", "as_httpcall.json")
    (s,) = r["streams"]
    assert headers(s, "request")[-1] == ["x-auth", "ok"]
    assert s["response"]["body"] == "private"
    calls = [e for e in s["events"] if e["name"] == "proxy_http_call"]
    assert calls[0]["args"]["upstream"] == "auth_cluster"
    assert calls[0]["args"]["headers"] == [[":method", "GET"], [":path", "/auth"], [":authority", "auth.local"]]
    cb = [e for e in r["vm"]["events"] if e["name"] == "proxy_on_http_call_response"]
    assert [(e["t_ms"], e["args"]) for e in cb] == [
        # :status, the trace's header, then content-length and x-envoy-upstream-service-time
        (5, {"root_context_id": 1, "token": 1, "headers": 4, "body_size": 7, "trailers": 0})
    ]


def test_as_body_buffers_then_rewrites(runtime: str) -> None:
    r = report(runtime, "as_body.wasm", "as_body.json")
    (s,) = r["streams"]
    assert s["actions"][:4] == [
        ["proxy_on_request_headers", "continue"],
        ["proxy_on_request_body", "stop_iteration_and_buffer"],
        ["proxy_on_request_body", "stop_iteration_and_buffer"],
        ["proxy_on_request_body", "continue"],  # the empty frame that ends the request
    ]
    bodies = [e["args"] for e in s["events"] if e["name"] == "proxy_on_request_body"]
    assert [(b["body_size"], b["end_of_stream"]) for b in bodies] == [
        (6, False), (11, False), (11, True)]
    assert s["request"]["body"] == "hello world"
    assert s["response"]["body"] == "HELLO FROM UPSTREAM"
    assert s["response"]["body_changes"][0]["after"] == "HELLO FROM UPSTREAM"


def test_go_wasip1(runtime: str) -> None:
    r = report(runtime, "go_wasip1.wasm", "go_headers.json")
    first, second = r["streams"]
    assert headers(first, "request")[-2:] == [["x-go-hits", "1"], ["x-go-rand", "62e6e282"]]
    assert headers(second, "request")[-2][1] == "2"
    assert headers(first, "response")[-1] == ["x-go", "1"]
    assert r["metrics"] == {"go_requests": {"type": "counter", "value": 2}}
    assert {"t_ms": 0, "level": "info", "message": "go_wasip1: configuration: go-config"} in r["vm"]["logs"]
    assert {"t_ms": 5, "level": "error", "message": "go_wasip1: response ctx=2 headers=4"} in first["logs"]


def test_rust_tcp(runtime: str) -> None:
    r = report(runtime, "rust_tcp.wasm", "rust_tcp.json")
    (s,) = r["streams"]
    assert s["kind"] == "tcp"
    assert (s["downstream"], s["upstream"]) == ("PONG", "hello")
    assert r["metrics"] == {"rust_bytes": {"type": "gauge", "value": 9}}
    names = [e["name"] for e in s["events"] if e["kind"] == "callback"]
    assert names == [
        "proxy_on_context_create", "proxy_on_new_connection", "proxy_on_downstream_data",
        "proxy_on_upstream_data", "proxy_on_downstream_data", "proxy_on_upstream_data",
        "proxy_on_upstream_connection_close", "proxy_on_downstream_connection_close",
        "proxy_on_done", "proxy_on_log", "proxy_on_delete",  # a connection: logged after its done
    ]


def test_c_abi010_pauses_and_resumes_on_tick(runtime: str) -> None:
    r = report(runtime, "c_abi010.wasm", "c_abi010_tick.json")
    for s, resumed_at in zip(r["streams"], (10, 25), strict=True):
        assert headers(s, "request")[-1] == ["x-resumed-by", "tick"]
        notes = [e for e in s["events"] if e["name"] == "resumed"]
        assert [(n["t_ms"], n["args"]) for n in notes] == [
            (resumed_at, {"stream": "request", "from": "headers"})
        ]
    assert r["metrics"] == {"c_abi010_requests": {"type": "counter", "value": 2}}
    assert {"t_ms": 0, "level": "info", "message": "c_abi010 configuration: hello from the trace"} in r["vm"]["logs"]


@pytest.mark.parametrize("wasm", ["myproject.wasm", "as_headers.wasm", "go_wasip1.wasm"])
def test_json_report_is_byte_identical_across_runs(runtime: str, wasm: str) -> None:
    from pwcli.report import dumps

    trace = {"myproject.wasm": "http_4pkts.json", "as_headers.wasm": "as_headers.json",
             "go_wasip1.wasm": "go_headers.json"}[wasm]
    a = dumps(report(runtime, wasm, trace))
    b = dumps(report(runtime, wasm, trace))
    assert a == b
