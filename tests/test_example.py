"""The shipped example: the README's main job, pinned."""

from __future__ import annotations

from pwcli.plugin import load_plugin
from pwcli.engine import ReplayOptions, replay
from pwcli.report import to_json
from pwcli.trace import load_trace

from .conftest import EXAMPLES, TRACES


def test_seed_trace_two_streams_one_context_each(runtime: str) -> None:
    run = replay(
        load_plugin(EXAMPLES / "myproject.wasm"),
        load_trace(TRACES / "http_4pkts.json"),
        ReplayOptions(runtime=runtime),
    )
    report = to_json(run)
    assert run.exit_code == 0
    assert [(s["context_id"], s["client"], s["server"]) for s in report["streams"]] == [
        (2, "10.0.0.2:50124", "10.0.0.1:443"),
        (3, "10.0.0.2:50125", "10.0.0.1:443"),
    ]
    first, second = report["streams"]
    # As Envoy presents them (tests/envoy compares with Envoy itself): pseudo-headers in its
    # order, the trace's headers, then what the connection manager and the router add.
    assert first["request"]["headers"] == [
        [":authority", "10.0.0.1"], [":path", "/content/web/index.html?a=1"], [":method", "GET"],
        [":scheme", "https"], ["h1", "v1"], ["h2", "v2"], ["d", "5"],
        ["x-forwarded-proto", "https"], ["x-request-id", "e174956c-92b5-464e-acdb-d99895aeee42"],
        ["a", "B2"],
    ]
    assert first["response"]["headers"] == [
        [":status", "200"], ["rh1", "rv1"], ["content-length", "12"],
        ["x-envoy-upstream-service-time", "5"], ["x-wasm-custom", "FOO"]]
    assert second["response"]["headers"] == [
        [":status", "200"], ["rh1", "rv1"], ["content-length", "9"],
        ["x-envoy-upstream-service-time", "15"], ["x-wasm-custom", "FOO"]]
    assert second["request"]["headers"][-1] == ["a", "B2"]
    assert first["response"]["body"] == "Hello World!"
    assert second["response"]["body"] == "ABCDEFGHI"
    for stream, size in ((first, 12), (second, 9)):
        callbacks = [(e["name"], e.get("args", {})) for e in stream["events"] if e["kind"] == "callback"]
        ctx = stream["context_id"]
        assert callbacks == [
            ("proxy_on_context_create", {"context_id": ctx, "parent_context_id": 1}),
            ("proxy_on_request_headers", {"context_id": ctx, "headers": len(stream["request"]["headers"]) - 1, "end_of_stream": True}),
            ("proxy_on_response_headers", {"context_id": ctx, "headers": 4, "end_of_stream": False}),
            ("proxy_on_response_body", {"context_id": ctx, "body_size": size, "end_of_stream": False}),
            ("proxy_on_response_body", {"context_id": ctx, "body_size": 0, "end_of_stream": True}),
            ("proxy_on_log", {"context_id": ctx}),
            ("proxy_on_done", {"context_id": ctx}),
            ("proxy_on_delete", {"context_id": ctx}),
        ]
    assert [(c["map"], c["op"], c["name"], c["after"]) for c in first["header_changes"]] == [
        ("request_headers", "add", "a", "B2"),
        ("response_headers", "add", "x-wasm-custom", "FOO"),
    ]
    assert first["logs"][0] == {
        "t_ms": 0, "level": "info",
        "message": "called WASM plugin onCreate 2 from client 10.0.0.2:50124 port 50124",
    }
    assert {"t_ms": 15, "level": "info", "message": "now_ns -> 1704067200015000000"} in second["logs"]
    assert report["summary"]["streams"] == 2 and report["summary"]["exit_status"] == 0
