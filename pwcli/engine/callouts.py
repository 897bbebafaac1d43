"""Answers to the plugin's http and gRPC calls, from the trace's ``upstreams``.

When an answer is due (``plan``) and how it reaches the plugin (``deliver``, ``deliver_failure``)
follow Envoy's ``Context::onHttpCallSuccess``/``onHttpCallFailure`` and the gRPC callbacks
(``source/extensions/common/wasm/context.cc``), with the root context receiving every answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..host.headers import HeaderMap
from ..host.host import Callout
from ..host.spec import BufferType, MapType
from ..trace import UpstreamResponse
from .messages import NO_BODY_STATUSES, pairs
from .options import NS_PER_MS

if TYPE_CHECKING:
    from .vm import Vm

FRAMING = {b"content-length", b"transfer-encoding"}
# Envoy's async client times out through its router: a local 504 the plugin receives as a response.
HTTP_TIMEOUT_REPLY = {
    "status": 504,
    "headers": [["content-length", "24"], ["content-type", "text/plain"]],
    "body": "upstream request timeout",
}


def plan(call: Callout, now_ns: int) -> tuple[int, str, Any]:
    """(when, kind, payload) of the call's answer: ``callout`` or ``callout_fail``."""
    resp: UpstreamResponse | None = call.response
    timeout = call.timeout_ms * NS_PER_MS if call.timeout_ms else None
    if resp is None:
        return now_ns, "callout_fail", (call, "no declared response left")
    delay = round(resp.delay_ms * NS_PER_MS)
    if resp.fail == "timeout" or (timeout is not None and delay > timeout):
        return now_ns + (timeout or delay), "callout_fail", (call, "timeout")
    if resp.fail == "reset":
        return now_ns + delay, "callout_fail", (call, "reset")
    return now_ns + delay, "callout", call


def deliver(vm: Vm, call: Callout, *, local: bool = False) -> None:
    """The declared answer: proxy_on_http_call_response, or the gRPC callbacks in order.

    An http call's answer comes through Envoy's async client and router as an upstream response
    does: with the HTTP/1 framing header and ``x-envoy-upstream-service-time`` (unless it is the
    router's own ``local`` reply, or ``--trace-headers-only``)."""
    host, rid = vm.host, vm.root.id
    resp: UpstreamResponse = call.response
    host.callouts.pop(call.token, None)
    if call.kind == "http":
        answer = [(b":status", str(resp.status).encode())] + pairs(resp.headers)
        if vm.e.envoy_headers and not local:
            names = {n for n, _ in answer}
            if resp.status not in NO_BODY_STATUSES and not names & FRAMING:
                answer.append((b"transfer-encoding", b"chunked") if resp.trailers else
                              (b"content-length", str(len(resp.body or b"")).encode()))
            service_ms = (vm.e.clock.now_ns - call.t_ns) // NS_PER_MS
            answer.append((b"x-envoy-upstream-service-time", str(service_ms).encode()))
        headers = HeaderMap(answer)
        trailers = HeaderMap(pairs(resp.trailers))
        body = resp.body or b""
        host.oob_maps = {MapType.HTTP_CALL_RESPONSE_HEADERS: headers,
                         MapType.HTTP_CALL_RESPONSE_TRAILERS: trailers}
        host.oob_buffers = {BufferType.HTTP_CALL_RESPONSE_BODY: body}
        vm.call(vm.root, "proxy_on_http_call_response", rid, call.token,
                len(headers), len(body), len(trailers))
        return
    # gRPC: initial metadata, each message, trailing metadata, close.
    if resp.initial_metadata:
        md = HeaderMap(pairs(resp.initial_metadata))
        host.oob_maps = {MapType.GRPC_CALL_INITIAL_METADATA: md}
        vm.call(vm.root, "proxy_on_grpc_receive_initial_metadata", rid, call.token, len(md))
    messages = list(resp.messages or ([resp.body] if resp.body is not None else []))
    for msg in messages:
        host.oob_maps = {}
        host.oob_buffers = {BufferType.GRPC_CALL_MESSAGE: msg}
        vm.call(vm.root, "proxy_on_grpc_receive", rid, call.token, len(msg))
    host.oob_buffers = {}
    if resp.trailing_metadata:
        md = HeaderMap(pairs(resp.trailing_metadata))
        host.oob_maps = {MapType.GRPC_CALL_TRAILING_METADATA: md}
        vm.call(vm.root, "proxy_on_grpc_receive_trailing_metadata", rid, call.token, len(md))
    host.oob_maps = {}
    code = resp.grpc_status or 0
    vm.root.status = (code, (resp.grpc_message or "").encode())
    vm.call(vm.root, "proxy_on_grpc_close", rid, call.token, code)


def deliver_failure(vm: Vm, call: Callout, why: str = "reset") -> None:
    """A timeout, a reset or no declared answer, as Envoy reports each to the plugin."""
    host, rid = vm.host, vm.root.id
    if why == "timeout" and call.kind == "http":
        # onHttpCallFailure is only for resets: a timeout is the router's 504 local reply.
        call.response = UpstreamResponse.model_validate(HTTP_TIMEOUT_REPLY)
        deliver(vm, call, local=True)
        return
    host.callouts.pop(call.token, None)
    if why == "timeout":
        vm.root.status = (4, b"Deadline Exceeded")  # gRPC DEADLINE_EXCEEDED
        vm.call(vm.root, "proxy_on_grpc_close", rid, call.token, 4)
    elif call.kind == "http":
        # Envoy's onFailure: the response callback with no headers, body or trailers, and
        # proxy_get_status answering BrokenConnection (11), "reset".
        vm.root.status = (11, b"reset")
        vm.call(vm.root, "proxy_on_http_call_response", rid, call.token, 0, 0, 0)
    else:
        vm.root.status = (14, b"upstream unavailable")  # gRPC UNAVAILABLE
        vm.call(vm.root, "proxy_on_grpc_close", rid, call.token, 14)
