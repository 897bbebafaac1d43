"""The plugin's callbacks as reports show them: argument names, and what each returned value means.

The reading of return values follows proxy-wasm-cpp-host (``src/context.cc``: ``onRequestHeaders``
and friends convert the guest's integer into ``FilterHeadersStatus``/``FilterDataStatus``).
"""

from __future__ import annotations

from typing import Any

from ..host.spec import V010, PeerType

HEADER_ACTIONS = {
    0: "continue",
    1: "stop_iteration",
    2: "continue_and_end_stream",
    3: "stop_all_iteration_and_buffer",
    4: "stop_all_iteration_and_watermark",
}
DATA_ACTIONS = {
    0: "continue",
    1: "stop_iteration_and_buffer",
    2: "stop_iteration_and_watermark",
    3: "stop_iteration_no_buffer",
}
CALLBACK_ARGS: dict[str, tuple[str, ...]] = {
    "proxy_on_context_create": ("context_id", "parent_context_id"),
    "proxy_on_vm_start": ("root_context_id", "vm_configuration_size"),
    "proxy_on_configure": ("root_context_id", "plugin_configuration_size"),
    "proxy_on_request_headers": ("context_id", "headers", "end_of_stream"),
    "proxy_on_response_headers": ("context_id", "headers", "end_of_stream"),
    "proxy_on_request_body": ("context_id", "body_size", "end_of_stream"),
    "proxy_on_response_body": ("context_id", "body_size", "end_of_stream"),
    "proxy_on_request_trailers": ("context_id", "trailers"),
    "proxy_on_response_trailers": ("context_id", "trailers"),
    "proxy_on_done": ("context_id",),
    "proxy_on_log": ("context_id",),
    "proxy_on_delete": ("context_id",),
    "proxy_on_tick": ("root_context_id",),
    "proxy_on_http_call_response": ("root_context_id", "token", "headers", "body_size", "trailers"),
    "proxy_on_grpc_receive_initial_metadata": ("root_context_id", "token", "elements"),
    "proxy_on_grpc_receive": ("root_context_id", "token", "message_size"),
    "proxy_on_grpc_receive_trailing_metadata": ("root_context_id", "token", "elements"),
    "proxy_on_grpc_close": ("root_context_id", "token", "status_code"),
    "proxy_on_queue_ready": ("root_context_id", "queue_id"),
    "proxy_on_new_connection": ("context_id",),
    "proxy_on_downstream_data": ("context_id", "data_size", "end_of_stream"),
    "proxy_on_upstream_data": ("context_id", "data_size", "end_of_stream"),
    "proxy_on_downstream_connection_close": ("context_id", "peer"),
    "proxy_on_upstream_connection_close": ("context_id", "peer"),
    "main": ("argc", "argv"),
}
BOOL_RESULTS = {"proxy_on_vm_start", "proxy_on_configure", "proxy_on_done"}
_CONTINUE_OR_STOP = {0: "continue", 1: "stop_iteration"}


def callback_args(name: str, args: tuple[int, ...]) -> dict[str, Any]:
    names = CALLBACK_ARGS.get(name, ())
    out: dict[str, Any] = {}
    for i, v in enumerate(args):
        key = names[i] if i < len(names) else f"arg{i}"
        if key == "end_of_stream":
            out[key] = bool(v)
        elif key == "peer":
            out[key] = PeerType(v).name.lower() if v <= 2 else v
        else:
            out[key] = v
    return out


def callback_result(name: str, result: int | None) -> Any:
    if result is None:
        return None
    if name in BOOL_RESULTS:
        return bool(result)
    if name in ("proxy_on_request_headers", "proxy_on_response_headers"):
        return HEADER_ACTIONS.get(result, result)
    if name.endswith(("_body", "_data")):
        return DATA_ACTIONS.get(result, result)
    if name.endswith("_trailers") or name == "proxy_on_new_connection":
        return _CONTINUE_OR_STOP.get(result, result)
    return result


def headers_action(r: int | None, abi: str, local_reply: bool) -> str:
    """cpp-host's ``convertFilterHeadersStatus``: what a headers callback's result does."""
    if local_reply:
        return "stop_all_iteration_and_watermark"
    if r is None or r == 0:
        return "continue"
    if r == 2:
        return "continue_and_end_stream"
    if r > 4 or (r == 1 and abi != V010):
        return "stop_all_iteration_and_watermark"
    return HEADER_ACTIONS[r]


def data_action(r: int | None, local_reply: bool) -> str:
    """cpp-host's ``convertFilterDataStatus``."""
    if local_reply:
        return "stop_iteration_no_buffer"
    if r is None or r == 0:
        return "continue"
    return DATA_ACTIONS.get(r, "stop_iteration_no_buffer")


def continue_or_stop(r: int | None, local_reply: bool = False) -> str:
    """Trailers and TCP callbacks: zero continues, anything else stops."""
    return "continue" if not r and not local_reply else "stop_iteration"
