"""The original's wasmHTTPPacket as a pwcli packet (the trace format), and back for the client.

The original's Python client sends every method as HTTP_GET, response packets included, and never
a body, a host or a status; pwcli reads what is there: ``method_name`` (pwcli) before ``method``,
``payload.payload_data`` as the body, ``status`` 0 as 200, an unset ``end_stream`` as true. A
response packet's method and path are ignored, as the trace format ignores them.
"""

from __future__ import annotations

from typing import Any

from . import proxy_wasm_cli_pb2 as pb

METHODS = {pb.HTTP_GET: "GET", pb.HTTP_POST: "POST", pb.HTTP_PUT: "PUT", pb.HTTP_DELETE: "DELETE"}
METHOD_ENUMS = {v: k for k, v in METHODS.items()}
SCHEMES = {pb.SCHEME_HTTPS: "https"}


def to_trace_packet(p: Any) -> dict[str, Any]:
    """One wasmHTTPPacket as a trace packet (validated later, naming the packet and the field)."""
    out: dict[str, Any] = {"sip": p.sip, "sp": p.sp, "dip": p.dip, "dp": p.dp,
                           "forward_direction": p.forward_direction, "delta_ms": p.delta_ms}
    if p.HasField("data") or p.close:
        if p.HasField("data"):
            out["data"] = {"base64": _b64(p.data)}
        if p.close:
            out["close"] = p.close
        return out
    out["scheme"] = SCHEMES.get(p.scheme, "http")
    if p.forward_direction:
        method = p.method_name or METHODS.get(p.method)
        if method:
            out["method"] = method
        if p.uri_path:
            out["uri_path"] = p.uri_path
        if p.query_params:
            out["query_params"] = {kv.key: kv.value for kv in p.query_params}
        if p.host:
            out["host"] = p.host
    elif p.status:
        out["status"] = p.status
    if p.headers:
        out["headers"] = [[kv.key, kv.value] for kv in p.headers]
    if p.HasField("payload") and p.payload.HasField("payload_data"):
        out["body"] = {"base64": _b64(p.payload.payload_data)}
    if p.trailers:
        out["trailers"] = [[kv.key, kv.value] for kv in p.trailers]
    if p.HasField("end_stream"):
        out["end_stream"] = p.end_stream
    return out


def from_trace_packet(raw: dict[str, Any], *, original_only: bool = False) -> Any:
    """A trace packet (a dict of the trace format, validated) as a wasmHTTPPacket. With
    ``original_only``, only the original's fields are set (for the original's server)."""
    from ..trace import Packet

    p = Packet.model_validate(raw)
    msg = pb.wasmHTTPPacket(sip=p.sip, dip=p.dip, sp=int(p.sp), dp=int(p.dp),
                            forward_direction=p.forward_direction, delta_ms=int(p.delta_ms),
                            scheme=pb.SCHEME_HTTPS if p.scheme == "https" else pb.SCHEME_HTTP)
    if p.uri_path:
        msg.uri_path = p.uri_path
    if p.method:
        msg.method = METHOD_ENUMS.get(p.method, pb.HTTP_NONE)
    for k, v in (p.query_params or {}).items():
        msg.query_params.add(key=k, value=v)
    for k, v in p.headers or []:
        msg.headers.add(key=k, value=v)
    if p.host:
        msg.host = p.host
    if p.body:
        msg.payload.payload_length = len(p.body)
        msg.payload.payload_data = p.body
    if original_only:
        return msg
    if p.method and p.method not in METHOD_ENUMS:
        msg.method_name = p.method
    if not p.forward_direction and p.status != 200:
        msg.status = p.status
    if not p.end_stream:
        msg.end_stream = False
    for k, v in p.trailers or []:
        msg.trailers.add(key=k, value=v)
    if p.data is not None:
        msg.data = p.data
    if p.close:
        msg.close = p.close
    return msg


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
