"""Probes: one WAT plugin per group of rules, logging what each host call answered, run through
real Envoy and through pwcli. Each rule here was a difference once (docs/envoy.md lists them)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

import pwcli
from pwcli.envoy import compare_with_envoy

from ..conftest import EXAMPLES, TRACES
from ..host.guest import OUT, PP
from .probes import exchange, log, probe, report, report_bytes, write


def agree(tmp_path: Path, name: str, g: Any, packets: list[dict[str, Any]] | dict[str, Any],
          **options: Any) -> pwcli.Run:
    """Run the probe in both; fail naming every line that differs. Returns pwcli's Run."""
    plugin = pwcli.load_plugin(write(g, tmp_path, name))
    trace = pwcli.parse_trace(packets, source=f"{name}.json")
    run = pwcli.replay(plugin, trace, pwcli.ReplayOptions(**options))
    c = compare_with_envoy(plugin, trace, pwcli.ReplayOptions(**options), run=run)
    lines = []
    for d in c.differences:
        if isinstance(d.pwcli, list) and isinstance(d.envoy, list):
            lines += [f"{d.where} {d.what}:"] + list(
                difflib.unified_diff(d.pwcli, d.envoy, "pwcli", "envoy", lineterm="", n=0))
        else:
            lines.append(f"{d.where} {d.what}: pwcli {d.pwcli!r}, envoy {d.envoy!r}")
    assert c.verdict == "agree", "\n".join([f"{name}: pwcli and Envoy differ"] + lines)
    return run


def pairs(m: int) -> str:
    return f"(call $proxy_get_header_map_pairs (i32.const {m}) {PP})"


def value(g: Any, m: int, key: str) -> str:
    return f"(call $proxy_get_header_map_value (i32.const {m}) {g.s(key)} {PP})"


def buffer(b: int, start: int, size: int) -> str:
    return (f"(call $proxy_get_buffer_bytes (i32.const {b}) (i32.const {start}) "
            f"(i32.const {size}) {PP})")


def test_the_end_of_a_stream(tmp_path: Path) -> None:
    g = probe()
    g.on("proxy_on_request_headers", log(g, "headers"))
    g.on("proxy_on_done", log(g, "done") + report(g, "proxy_done in on_done", "(call $proxy_done)"),
         ret=0)
    g.on("proxy_on_log", log(g, "log") + report(g, "proxy_done in on_log", "(call $proxy_done)"))
    g.on("proxy_on_delete", log(g, "delete"))
    run = agree(tmp_path, "end", g, exchange())
    assert [m for _, m in run.logs(stream=0)] == [
        "headers", "log", "proxy_done in on_log 1", "done", "proxy_done in on_done 1", "delete"]


def test_header_maps_where_they_are_not_available(tmp_path: Path) -> None:
    g = probe()
    g.on("proxy_on_vm_start", report(g, "request pairs in the root", pairs(0)), ret=1)
    g.on("proxy_on_request_headers",
         report(g, "response pairs", pairs(2)) + report(g, "response value", value(g, 2, ":status"))
         + report(g, "request trailers", pairs(1)) + report(g, "http call headers", pairs(6)))
    g.on("proxy_on_request_body",
         report(g, "request pairs in body", pairs(0)) + report(g, "trailers in body", pairs(1)))
    g.on("proxy_on_response_headers", report(g, "request pairs in response", pairs(0))
         + report_bytes(g, "request value in response", value(g, 0, "x-probe")))
    g.on("proxy_on_log", report_bytes(g, "request value in log", value(g, 0, "x-probe"))
         + report_bytes(g, "response value in log", value(g, 2, "x-up")))
    g.on("proxy_on_done", report(g, "request value in done", value(g, 0, "x-probe")))
    run = agree(tmp_path, "maps", g, exchange(body="abc"))
    assert ("info", "response pairs 0") in run.logs(stream=0)
    assert ("info", "request value in log 0 1") in run.logs(stream=0)


def test_buffers_where_they_are_not_available_and_past_their_end(tmp_path: Path) -> None:
    g = probe()
    g.on("proxy_on_vm_start", report_bytes(g, "vm config", buffer(6, 0, 10))
         + report_bytes(g, "vm config past its end", buffer(6, 50, 10))
         + report(g, "set request body in the root",
                  f"(call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 0) "
                  f"{g.s('x')})")
         + report(g, "request body status in the root",
                  f"(call $proxy_get_buffer_status (i32.const 0) (i32.const {OUT + 8}) "
                  f"(i32.const {OUT + 12}))"), ret=1)
    g.on("proxy_on_request_headers", report_bytes(g, "request body in headers", buffer(0, 0, 10))
         + report_bytes(g, "http call body", buffer(4, 0, 10)))
    g.on("proxy_on_request_body", report_bytes(g, "body", buffer(0, 0, 100))
         + report_bytes(g, "body 2..", buffer(0, 2, 3))
         + report_bytes(g, "body 9..", buffer(0, 9, 1))
         + report_bytes(g, "response body", buffer(1, 0, 10)))
    run = agree(tmp_path, "buffers", g, exchange(body="abc"), vm_configuration=b"vmcfg")
    assert ("info", "http call body 1") in run.logs(stream=0)
    assert ("info", "body 9.. 0 ") in run.logs(stream=0)


def test_root_context_calls_status_and_property_paths(tmp_path: Path) -> None:
    g = probe()
    no_body = g.s(b"")
    g.on("proxy_on_vm_start",
         report(g, "get_status", f"(call $proxy_get_status (i32.const {OUT + 8}) {PP})")
         + report(g, "status code", f"(i32.load (i32.const {OUT + 8}))")
         + report(g, "local reply from the root", f"(call $proxy_send_local_response "
                  f"(i32.const 403) {g.s('x')} {g.s('body')} {no_body} (i32.const -1))")
         + report(g, "continue from the root", "(call $proxy_continue_stream (i32.const 0))")
         + report(g, "close from the root", "(call $proxy_close_stream (i32.const 0))")
         + report(g, "set_property in the root",
                  f"(call $proxy_set_property {g.s('foo')} {g.s('bar')})")
         + report_bytes(g, "plugin_root_id",
                        f"(call $proxy_get_property {g.s('plugin_root_id')} {PP})"),
         ret=1)
    nul = bytes([0])
    g.on("proxy_on_request_headers",
         report_bytes(g, "source.address in one segment",
                      f"(call $proxy_get_property {g.s('source.address')} {PP})")
         + report_bytes(g, "source address",
                        f"(call $proxy_get_property {g.s(b'source' + nul + b'address')} {PP})")
         + report_bytes(g, "request path",
                        f"(call $proxy_get_property {g.s(b'request' + nul + b'path')} {PP})")
         + report(g, "set_property in a stream",
                  f"(call $proxy_set_property {g.s('foo')} {g.s('bar')})")
         + report(g, "unknown foreign function",
                  f"(call $proxy_call_foreign_function {g.s('nope')} {g.s('')} {PP})"))
    run = agree(tmp_path, "root", g, exchange())
    assert ("info", "source.address in one segment 1") in run.logs(stream=0)
    assert ("info", "source address 0 10.0.0.2:40000") in run.logs(stream=0)


def test_a_local_reply_from_an_http_call_answer(tmp_path: Path) -> None:
    g = probe()
    call = (f"(call $proxy_http_call {g.s('auth')} "
            f"{g.s(_pairs(':method', 'GET', ':path', '/check', ':authority', 'auth'))} "
            f"{g.s('')} {g.s('')} (i32.const 5000) (i32.const {OUT + 16}))")
    g.on("proxy_on_request_headers", report(g, "http call", call), ret=1)
    g.on("proxy_on_http_call_response",
         report(g, "answer headers", "(local.get $p2)")
         + report(g, "effective", "(call $proxy_set_effective_context (i32.const 2))")
         + report(g, "deny", f"(call $proxy_send_local_response (i32.const 403) {g.s('denied')} "
                             f"{g.s('no')} {g.s(b'')} (i32.const -1))"))
    g.on("proxy_on_response_headers", report(g, "response headers", "(local.get $p1)"))
    trace = {"packets": exchange(), "upstreams": {"auth": {"status": 200, "body": "fine"}}}
    run = agree(tmp_path, "deny", g, trace)
    s = run.stream(0)
    assert s.local_reply is not None and s.response.header(":status") == "403"
    assert s.response.body == b"no"


def test_a_plugin_both_refuse(tmp_path: Path) -> None:
    g = probe()
    g.on("proxy_on_configure", log(g, "no"), ret=0)
    plugin = pwcli.load_plugin(write(g, tmp_path, "refuse"))
    trace = pwcli.parse_trace(exchange(), source="refuse.json")
    run = pwcli.replay(plugin, trace)
    c = compare_with_envoy(plugin, trace, run=run)
    assert c.verdict == "refused" and c.refused
    assert run.refused_configuration is not None and c.agrees_with(run)


def _pairs(*items: str) -> bytes:
    from pwcli.host.codec import encode_pairs

    it = iter(items)
    return encode_pairs([(k.encode(), v.encode()) for k, v in zip(it, it, strict=True)])


def test_foreign_functions_and_stdout(tmp_path: Path) -> None:
    """The foreign functions Envoy registers, with empty and real arguments; each fd_write is one
    log entry (stdout at info, stderr at error)."""
    g = probe()
    names = ["compress", "uncompress", "declare_property", "clear_route_cache", "expr_create",
             "expr_evaluate", "expr_delete", "verify_signature", "sign", "set_envoy_filter_state",
             "nope"]
    body = "".join(report(g, f"foreign {n}",
                          f"(call $proxy_call_foreign_function {g.s(n)} {g.s('')} {PP})")
                   for n in names)
    compress = f"(call $proxy_call_foreign_function {g.s('compress')} {g.s('hello hello')} {PP})"
    body += report(g, "compress hello", compress)
    body += report(g, "compressed size", f"(i32.load (i32.const {OUT + 4}))")
    iov = OUT + 0x40

    def fd_write(fd: int, text: str) -> str:
        return (f"(i32.store (i32.const {iov}) (i32.const {g.addr(text)}))"
                f"(i32.store (i32.const {iov + 4}) (i32.const {len(text)}))"
                f"(drop (call $fd_write (i32.const {fd}) (i32.const {iov}) (i32.const 1)"
                f" (i32.const {OUT + 0x60})))")

    body += fd_write(1, "ab") + fd_write(1, "cd\n") + fd_write(2, "oops")
    g.on("proxy_on_request_headers", body)
    run = agree(tmp_path, "foreign", g, exchange())
    logs = run.logs(stream=0)
    assert ("info", "foreign uncompress 3") in logs and ("info", "foreign sign 2") in logs
    assert logs[-3:] == [("info", "ab"), ("info", "cd"), ("error", "oops")]


@pytest.mark.parametrize(("side", "how"), [(True, "fin"), (False, "fin"), (True, "rst"),
                                           (False, "rst")])
def test_a_tcp_connection_closed_by_either_side(side: bool, how: str) -> None:
    """Through tcp_proxy, with the other side closing in turn (as a typical peer does): the plugin
    sees the other side end too, then both close events, with the peer Envoy reports; a reset
    ends the connection at once."""
    trace = json.loads((TRACES / "rust_tcp.json").read_text())
    last = trace["packets"][2]
    if not side:
        last.update({"sip": "10.0.0.1", "sp": 7000, "dip": "10.0.0.2", "dp": 40100,
                     "forward_direction": False})
    last["close"] = how
    plugin = pwcli.load_plugin(EXAMPLES / "rust_tcp.wasm")
    tr = pwcli.parse_trace(trace, source="close.json")
    run = pwcli.replay(plugin, tr)
    c = compare_with_envoy(plugin, tr, run=run)
    assert (c.verdict, [d.to_json() for d in c.differences]) == ("agree", [])
    closes = [(e.name, e.args["peer"]) for e in run.events if e.name.endswith("connection_close")]
    assert closes == {
        (True, "fin"): [("proxy_on_upstream_connection_close", "unknown"),
                        ("proxy_on_downstream_connection_close", "local")],
        (False, "fin"): [("proxy_on_upstream_connection_close", "unknown"),
                         ("proxy_on_downstream_connection_close", "remote")],
        (True, "rst"): [("proxy_on_downstream_connection_close", "remote")],
        (False, "rst"): [("proxy_on_downstream_connection_close", "local")],
    }[(side, how)]


def test_properties_in_each_phase(tmp_path: Path) -> None:
    """Every property pwcli serves, in the request and response headers callbacks and in
    proxy_on_log: the status, and the value (the size for binary ones). upstream.address is the
    mock upstream in Envoy, the trace's server in pwcli: only its status is compared; so are the
    header maps' in proxy_on_log, where Envoy's hold what its router and connection manager add
    after the plugin (x-envoy-expected-rq-timeout-ms, date, server), which pwcli does not."""
    from pwcli.host.properties import INT_PROPERTIES, SERVED

    g = probe()

    def props(where: str) -> str:
        out = ""
        for name in SERVED:
            call = f"(call $proxy_get_property {g.s(name.replace('.', chr(0)).encode())} {PP})"
            if name.startswith("upstream.") or (where == "log" and name.endswith("headers")):
                out += report(g, f"{where} {name}", call)
            elif name in INT_PROPERTIES or name.endswith(("headers", "trailers", "mtls")):
                out += report(g, f"{where} {name}", call)
                out += report(g, f"{where} {name} size", f"(i32.load (i32.const {OUT + 4}))")
            else:
                out += report_bytes(g, f"{where} {name}", call)
        return out

    g.on("proxy_on_request_headers", props("request"))
    g.on("proxy_on_response_headers", props("response"))
    g.on("proxy_on_log", props("log"))
    run = agree(tmp_path, "properties", g, exchange(body="abc"))
    logs = run.logs(stream=0)
    assert ("info", "request upstream.address 1") in logs  # not chosen yet
    assert ("info", "response request.path 1") in logs  # request headers gone by then
    assert ("info", "log request.path 0 /") in logs
    assert ("info", "request response.headers size 4") in logs  # an empty map


def _agree_example(packets: list[dict[str, Any]], name: str) -> pwcli.Run:
    """The example plugin (it logs every header it is shown and its end callbacks) in both."""
    plugin = pwcli.load_plugin(EXAMPLES / "myproject.wasm")
    trace = pwcli.parse_trace(packets, source=f"{name}.json")
    run = pwcli.replay(plugin, trace)
    c = compare_with_envoy(plugin, trace, run=run)
    assert (c.verdict, [d.to_json() for d in c.differences]) == ("agree", [])
    return run


@pytest.mark.parametrize(("side", "how"), [(True, "fin"), (False, "fin"), (True, "rst"),
                                           (False, "rst")])
def test_a_connection_ends_with_done_then_log(side: bool, how: str) -> None:
    """A network filter's connection is destroyed before it is logged (found by replaying a
    capture's TCP flow through a plugin that logs its end callbacks)."""
    client, server = ("10.0.0.2", 40100), ("10.0.0.1", 7000)
    closer = (client, server) if side else (server, client)
    packets = [
        {"sip": client[0], "sp": client[1], "dip": server[0], "dp": server[1],
         "forward_direction": True, "data": "PING"},
        {"sip": server[0], "sp": server[1], "dip": client[0], "dp": client[1],
         "forward_direction": False, "data": "PONG", "delta_ms": 2},
        {"sip": closer[0][0], "sp": closer[0][1], "dip": closer[1][0], "dp": closer[1][1],
         "forward_direction": side, "close": how, "delta_ms": 3}]
    run = _agree_example(packets, "tcp_end")
    assert [m for _, m in run.logs(stream=0)][-3:] == ["onDone 2", "onLog 2", "onDelete 2"]


def _req(port: int, path: str, headers: list[list[str]], **more: Any) -> dict[str, Any]:
    return {"sip": "10.0.0.2", "sp": port, "dip": "10.0.0.1", "dp": 80,
            "forward_direction": True, "method": "GET", "uri_path": path, "headers": headers,
            **more}


def _resp(port: int, headers: list[list[str]], body: str = "ok") -> dict[str, Any]:
    return {"sip": "10.0.0.1", "sp": 80, "dip": "10.0.0.2", "dp": port,
            "forward_direction": False, "headers": headers, "body": body}


def test_hop_by_hop_headers_are_off_before_the_plugin() -> None:
    """Found replaying real captures: Envoy takes Connection, Keep-Alive, Proxy-Connection,
    Upgrade, Transfer-Encoding, what Connection names, TE (unless "trailers") and "Expect:
    100-continue" off a request before the filters; of a response, only Keep-Alive (its
    Transfer-Encoding comes last)."""
    run = _agree_example([
        _req(40001, "/a", [["Host", "x"], ["Connection", "keep-alive, X-Foo"],
                           ["Keep-Alive", "timeout=5"], ["Proxy-Connection", "keep-alive"],
                           ["X-Foo", "1"], ["TE", "trailers"], ["Expect", "100-continue"]]),
        _resp(40001, [["Connection", "keep-alive"], ["Keep-Alive", "timeout=5"],
                      ["content-length", "2"]]),
        _req(40002, "/b", [["Host", "x"], ["Upgrade", "h2c"], ["Connection", "Upgrade"],
                           ["TE", "gzip"], ["Transfer-Encoding", "chunked"]], body="abc"),
        _resp(40002, [["Connection", "x-baz"], ["x-baz", "3"], ["Proxy-Connection", "close"],
                      ["Transfer-Encoding", "chunked"], ["Upgrade", "foo"]]),
    ], "hop_by_hop")
    first, second = run.streams
    assert [n for n, _ in first.request_headers][4:] == [
        "te", "x-forwarded-proto", "x-request-id", "a"]
    assert [n for n, _ in second.request_headers][4:] == ["x-forwarded-proto", "x-request-id",
                                                          "a"]
    assert [n for n, _ in second.response_headers][1:] == [
        "connection", "x-baz", "proxy-connection", "upgrade", "transfer-encoding",
        "x-envoy-upstream-service-time", "x-wasm-custom"]


def test_a_pipelined_request_waits_for_the_response_before_it() -> None:
    """Found replaying a capture: Envoy's HTTP/1 codec reads the next request on a connection
    only once the response before it has ended, so its stream opens then."""
    run = _agree_example([
        _req(40003, "/one", [["Host", "x"]]), _req(40003, "/two", [["Host", "x"]], delta_ms=1),
        _resp(40003, [["content-length", "2"]]) | {"delta_ms": 5},
        _resp(40003, [["content-length", "2"]]) | {"delta_ms": 5}], "pipelined")
    opened = [(e.t_ns // 1_000_000, e.args["context_id"]) for e in run.events
              if e.name == "proxy_on_context_create" and e.stream is not None]
    assert opened == [(0, 2), (6, 3)]  # the second at the first response's time, not at 1 ms
