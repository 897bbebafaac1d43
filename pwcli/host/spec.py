"""The proxy-wasm ABI as data: enums, host functions and callbacks of 0.1.0, 0.2.0 and 0.2.1.

Values are the spec's integers (github.com/proxy-wasm/spec, abi-versions/*); extras that
proxy-wasm-cpp-host (and so Envoy) provides are marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

V010, V020, V021 = "0.1.0", "0.2.0", "0.2.1"
VERSIONS = (V010, V020, V021)
ALL = frozenset(VERSIONS)
V02 = frozenset({V020, V021})
MARKER_PREFIX = "proxy_abi_version_"


class Status(IntEnum):
    OK = 0
    NOT_FOUND = 1
    BAD_ARGUMENT = 2
    SERIALIZATION_FAILURE = 3
    PARSE_FAILURE = 4
    BAD_EXPRESSION = 5
    INVALID_MEMORY_ACCESS = 6
    EMPTY = 7
    CAS_MISMATCH = 8
    RESULT_MISMATCH = 9
    INTERNAL_FAILURE = 10
    BROKEN_CONNECTION = 11
    UNIMPLEMENTED = 12


class LogLevel(IntEnum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
    CRITICAL = 5


class MapType(IntEnum):
    HTTP_REQUEST_HEADERS = 0
    HTTP_REQUEST_TRAILERS = 1
    HTTP_RESPONSE_HEADERS = 2
    HTTP_RESPONSE_TRAILERS = 3
    GRPC_CALL_INITIAL_METADATA = 4
    GRPC_CALL_TRAILING_METADATA = 5
    HTTP_CALL_RESPONSE_HEADERS = 6
    HTTP_CALL_RESPONSE_TRAILERS = 7


class BufferType(IntEnum):
    HTTP_REQUEST_BODY = 0
    HTTP_RESPONSE_BODY = 1
    DOWNSTREAM_DATA = 2
    UPSTREAM_DATA = 3
    HTTP_CALL_RESPONSE_BODY = 4
    GRPC_CALL_MESSAGE = 5
    VM_CONFIGURATION = 6
    PLUGIN_CONFIGURATION = 7
    FOREIGN_FUNCTION_ARGUMENTS = 8


class StreamType(IntEnum):
    HTTP_REQUEST = 0
    HTTP_RESPONSE = 1
    DOWNSTREAM = 2
    UPSTREAM = 3


class PeerType(IntEnum):
    UNKNOWN = 0
    LOCAL = 1
    REMOTE = 2


class MetricType(IntEnum):
    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2


class Errno(IntEnum):
    """WASI preview1 errno values pwcli answers with."""

    SUCCESS = 0
    BADF = 8
    FAULT = 21
    INVAL = 28
    NOENT = 44
    NOSYS = 52
    NOTDIR = 20
    NOTSUP = 58
    NOTCAPABLE = 76


# Lower-case names used in reports: "request_headers", "http_call_response_body", ...
def enum_name(enum: type[IntEnum], value: int) -> str:
    name = _ENUM_NAMES.get((enum, value))
    if name is None:
        try:
            name = enum(value).name.lower()
        except ValueError:
            name = f"unknown({value})"
        if len(_ENUM_NAMES) < 4096:  # a hot-path cache; odd values are not worth keeping
            _ENUM_NAMES[(enum, value)] = name
    return name


_ENUM_NAMES: dict[tuple[type[IntEnum], int], str] = {}


@dataclass(frozen=True)
class Signature:
    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join(self.params or ()) + " -> " + " ".join(self.results or ())


def sig(spec: str) -> Signature:
    """``"iiI>i"``: i = i32, I = i64; after ``>`` the results."""
    params, _, results = spec.partition(">")
    conv = {"i": "i32", "I": "i64"}
    return Signature(tuple(conv[c] for c in params), tuple(conv[c] for c in results))


@dataclass(frozen=True)
class HostFunctionSpec:
    name: str
    signature: Signature
    versions: frozenset[str]
    section: str


def _host(section: str, versions: frozenset[str], **fns: str) -> dict[str, HostFunctionSpec]:
    return {n: HostFunctionSpec(n, sig(s), versions, section) for n, s in fns.items()}


# Module "env": every proxy-wasm host function, keyed by import name.
HOST_FUNCTIONS: dict[str, HostFunctionSpec] = {
    **_host(
        "logging, time, lifecycle",
        ALL,
        proxy_log="iii>i",
        proxy_get_current_time_nanoseconds="i>i",
        proxy_set_tick_period_milliseconds="i>i",
        proxy_done=">i",
        proxy_set_effective_context="i>i",
        proxy_get_status="iii>i",
    ),
    **_host("logging, time, lifecycle", frozenset({V021}), proxy_get_log_level="i>i"),
    **_host("configuration", frozenset({V010}), proxy_get_configuration="ii>i"),
    **_host(
        "buffers",
        ALL,
        proxy_get_buffer_bytes="iiiii>i",
        proxy_get_buffer_status="iii>i",
        proxy_set_buffer_bytes="iiiii>i",
    ),
    **_host(
        "header maps",
        ALL,
        proxy_get_header_map_size="ii>i",
        proxy_get_header_map_pairs="iii>i",
        proxy_set_header_map_pairs="iii>i",
        proxy_get_header_map_value="iiiii>i",
        proxy_add_header_map_value="iiiii>i",
        proxy_replace_header_map_value="iiiii>i",
        proxy_remove_header_map_value="iii>i",
    ),
    **_host("stream control", V02, proxy_continue_stream="i>i", proxy_close_stream="i>i"),
    **_host(
        "stream control",
        frozenset({V010}),
        proxy_continue_request=">i",
        proxy_continue_response=">i",
        proxy_clear_route_cache=">i",
    ),
    **_host("stream control", ALL, proxy_send_local_response="iiiiiiii>i"),
    **_host(
        "out-of-band calls",
        ALL,
        proxy_http_call="iiiiiiiiii>i",
        proxy_grpc_call="iiiiiiiiiiii>i",
        proxy_grpc_stream="iiiiiiiii>i",
        proxy_grpc_send="iiii>i",
        proxy_grpc_cancel="i>i",
        proxy_grpc_close="i>i",
    ),
    **_host(
        "shared data and queues",
        ALL,
        proxy_get_shared_data="iiiii>i",
        proxy_set_shared_data="iiiii>i",
        proxy_register_shared_queue="iii>i",
        proxy_resolve_shared_queue="iiiii>i",
        proxy_enqueue_shared_queue="iii>i",
        proxy_dequeue_shared_queue="iii>i",
    ),
    **_host(
        "metrics",
        ALL,
        proxy_define_metric="iiii>i",
        proxy_increment_metric="iI>i",
        proxy_record_metric="iI>i",
        proxy_get_metric="ii>i",
    ),
    **_host(
        "properties and foreign functions",
        ALL,
        proxy_get_property="iiii>i",
        proxy_set_property="iiii>i",
        proxy_call_foreign_function="iiiiii>i",
    ),
    # Not in the spec; proxy-wasm-cpp-host always registers them.
    **_host("cpp-host extras", ALL, emscripten_notify_memory_growth="i>", pthread_equal="ii>i"),
}

WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")

# WASI preview1 functions as proxy-wasm-cpp-host provides them.
WASI_FUNCTIONS: dict[str, Signature] = {
    n: sig(s)
    for n, s in dict(
        args_get="ii>i",
        args_sizes_get="ii>i",
        environ_get="ii>i",
        environ_sizes_get="ii>i",
        clock_res_get="ii>i",
        clock_time_get="iIi>i",
        fd_advise="iIIi>i",
        fd_allocate="iII>i",
        fd_close="i>i",
        fd_datasync="i>i",
        fd_fdstat_get="ii>i",
        fd_fdstat_set_flags="ii>i",
        fd_fdstat_set_rights="iII>i",
        fd_filestat_get="ii>i",
        fd_filestat_set_size="iI>i",
        fd_filestat_set_times="iIIi>i",
        fd_pread="iiiIi>i",
        fd_prestat_get="ii>i",
        fd_prestat_dir_name="iii>i",
        fd_pwrite="iiiIi>i",
        fd_read="iiii>i",
        fd_readdir="iiiIi>i",
        fd_renumber="ii>i",
        fd_seek="iIii>i",
        fd_sync="i>i",
        fd_tell="ii>i",
        fd_write="iiii>i",
        path_create_directory="iii>i",
        path_filestat_get="iiiii>i",
        path_filestat_set_times="iiiiIIi>i",
        path_open="iiiiiIIii>i",
        path_readlink="iiiiii>i",
        path_remove_directory="iii>i",
        path_rename="iiiiii>i",
        path_unlink_file="iii>i",
        poll_oneoff="iiii>i",
        proc_exit="i>",
        random_get="ii>i",
        sched_yield=">i",
        sock_accept="iii>i",
        sock_recv="iiiiii>i",
        sock_send="iiiii>i",  # (fd, si_data, si_data_len, si_flags, *nsent)
        sock_shutdown="ii>i",
    ).items()
}
# WASI preview1 functions proxy-wasm-cpp-host does not link (or links with another signature):
# Envoy refuses a module that imports them; --lenient stubs them with ENOSYS.
WASI_NOT_IN_ENVOY: dict[str, Signature] = {
    "path_link": sig("iiiiiii>i"),
    "path_symlink": sig("iiiii>i"),
    "proc_raise": sig("i>i"),
}


@dataclass(frozen=True)
class CallbackSpec:
    name: str
    signature: Signature
    group: str


def _cb(group: str, **fns: str) -> dict[str, CallbackSpec]:
    return {n: CallbackSpec(n, sig(s), group) for n, s in fns.items()}


_COMMON_CALLBACKS = {
    **_cb(
        "lifecycle",
        proxy_on_context_create="ii>",
        proxy_on_vm_start="ii>i",
        proxy_on_configure="ii>i",
        proxy_validate_configuration="ii>i",
        proxy_on_tick="i>",
        proxy_on_done="i>i",
        proxy_on_log="i>",
        proxy_on_delete="i>",
    ),
    **_cb(
        "tcp",
        proxy_on_new_connection="i>i",
        proxy_on_downstream_data="iii>i",
        proxy_on_upstream_data="iii>i",
        proxy_on_downstream_connection_close="ii>",
        proxy_on_upstream_connection_close="ii>",
    ),
    **_cb(
        "http",
        proxy_on_request_body="iii>i",
        proxy_on_request_trailers="ii>i",
        proxy_on_request_metadata="ii>i",
        proxy_on_response_body="iii>i",
        proxy_on_response_trailers="ii>i",
        proxy_on_response_metadata="ii>i",
    ),
    **_cb(
        "out-of-band",
        proxy_on_http_call_response="iiiii>",
        proxy_on_grpc_receive_initial_metadata="iii>",
        proxy_on_grpc_receive="iii>",
        proxy_on_grpc_receive_trailing_metadata="iii>",
        proxy_on_grpc_close="iii>",
        proxy_on_queue_ready="ii>",
    ),
    **_cb(
        "memory and start-up",
        proxy_on_memory_allocate="i>i",
        malloc="i>i",
        _initialize=">",
        _start=">",
        main="ii>i",
        __main_void=">i",
    ),
}

CALLBACKS: dict[str, dict[str, CallbackSpec]] = {
    V010: {
        **_COMMON_CALLBACKS,
        **_cb("http", proxy_on_request_headers="ii>i", proxy_on_response_headers="ii>i"),
    },
    V020: {
        **_COMMON_CALLBACKS,
        **_cb("http", proxy_on_request_headers="iii>i", proxy_on_response_headers="iii>i"),
        **_cb("out-of-band", proxy_on_foreign_function="iii>"),
    },
}
CALLBACKS[V021] = CALLBACKS[V020]


def host_function(version: str, name: str) -> HostFunctionSpec | None:
    spec = HOST_FUNCTIONS.get(name)
    if spec is None or version not in spec.versions:
        return None
    return spec


def marker_version(name: str) -> str | None:
    """``proxy_abi_version_0_2_1`` -> ``0.2.1`` when it is a version pwcli (and Envoy) knows."""
    if not name.startswith(MARKER_PREFIX):
        return None
    version = name[len(MARKER_PREFIX) :].replace("_", ".")
    return version if version in VERSIONS else None
