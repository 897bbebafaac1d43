"""Property-based tests (hypothesis): the trace loader over arbitrary JSON, the replay over arbitrary
valid traces, and every host call's argument decoding against a real guest.

CI runs ``PWCLI_FUZZ_EXAMPLES`` examples per property (default 200). The long run:

    PWCLI_FUZZ_EXAMPLES=100000 python -m pytest -q tests/test_fuzz.py

Every property asserts the same three things: no exception other than pwcli's own ``TraceError``
(for input) escapes, the process does not crash, and the report of the streams the garbage did
not touch is intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pwcli import runtimes
from pwcli.errors import TraceError
from pwcli.host.spec import V010, V021, Errno, Signature, Status
from pwcli.plugin import Plugin, load_plugin
from pwcli.engine import ReplayOptions, replay
from pwcli.report import to_json
from pwcli.runtimes.base import TRAP_KINDS
from pwcli.runtimes.wasmtime import WasmtimeRuntime
from pwcli.trace import load_trace, parse_trace

from .conftest import EXAMPLES, write_wasm
from .hostile import Target, caller_guest, orders, streams, targets

EXAMPLES_PER_PROPERTY = int(os.environ.get("PWCLI_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES_PER_PROPERTY,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)


# -- one engine and one compiled module per guest, for every example ------------------------
@pytest.fixture(scope="module")
def shared_engine() -> Iterator[WasmtimeRuntime]:
    """Every replay of this module reuses one wasmtime engine, and each guest is compiled once."""
    rt = WasmtimeRuntime()
    compiled: dict[bytes, Any] = {}
    compile_once = rt.compile

    def compile(wasm: bytes, *, cache: bool = True) -> Any:
        if wasm not in compiled:
            compiled[wasm] = compile_once(wasm, cache=cache)
        return compiled[wasm]

    rt.compile = compile  # type: ignore[method-assign]
    mp = pytest.MonkeyPatch()
    mp.setattr(runtimes, "create", lambda name, **kw: rt)
    yield rt
    mp.undo()


# -- the trace loader ----------------------------------------------------------------------
JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-70000, 70000)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=10)

PACKET_FIELDS = ["sip", "sp", "dip", "dp", "forward_direction", "delta_ms", "protocol", "scheme",
                 "method", "uri_path", "query_params", "host", "headers", "body", "status",
                 "trailers", "end_stream", "data", "close", "expect", "forward_directon"]
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "sip": st.sampled_from(["10.0.0.2", "10.0.0.1", "::1", "999.0.0.1", "", "host"]),
    "dip": st.sampled_from(["10.0.0.1", "10.0.0.2", "fe80::1", "1.2.3"]),
    "sp": st.sampled_from([0, 1, 80, 50000, 65535, 65536, -1, "80", "x", 1.5, True]),
    "dp": st.sampled_from([80, 443, 50000, 70000, None]),
    "forward_direction": st.sampled_from([True, False, "yes", 1, None]),
    "delta_ms": st.sampled_from([0, 1, 0.5, -1, 1e300, 10**20, "5", float("nan")]),
    "method": st.sampled_from(["GET", "POST", "G ET", "", 7]),
    "uri_path": st.sampled_from(["/", "/a?b=c", "a", "*", "/ x", ""]),
    "headers": st.one_of(
        st.dictionaries(st.sampled_from(["a", "host", ":status", ":path", "Bad Name", "x\n"]),
                        st.sampled_from(["1", "v", "a\r\nb", 5, None]), max_size=3),
        st.lists(st.lists(st.sampled_from(["a", "b", 1]), max_size=3), max_size=3)),
    "body": st.one_of(st.text(max_size=10), st.just({"base64": "aGk="}),
                      st.just({"base64": "!!"}), st.just(["x"])),
    "status": st.sampled_from([200, 42, 999, 1000, "200"]),
    "end_stream": st.sampled_from([True, False, "false"]),
    "data": st.one_of(st.text(max_size=5), st.just({"base64": "AA=="})),
    "close": st.sampled_from(["fin", "rst", "bye"]),
}
PACKET = st.fixed_dictionaries(
    {},
    optional={f: PLAUSIBLE.get(f, JSON_SCALARS) for f in PACKET_FIELDS},
)
TRACE = st.one_of(
    JSON,
    st.lists(PACKET, max_size=6),
    st.fixed_dictionaries({"packets": st.lists(PACKET, max_size=4)},
                          optional={"upstreams": JSON, "plugin": JSON, "version": JSON,
                                    "properties": JSON, "expect": JSON, "upstream": JSON}),
)


@FUZZ
@given(raw=TRACE)
def test_the_trace_loader_raises_only_trace_error(raw: Any) -> None:
    try:
        parse_trace(raw, source="fuzz.json")
    except TraceError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("fuzz.json")


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1")), TRACE.map(lambda v: json.dumps(v, allow_nan=True))))
def test_the_trace_file_loader_raises_only_trace_error(tmp_path_factory: pytest.TempPathFactory,
                                                      text: str) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-trace.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        load_trace(path)
    except TraceError as exc:
        assert "\n" not in str(exc)


# -- the replay engine over whatever the loader accepts -------------------------------------
def _valid_packet(client_port: int, forward: bool, extra: dict[str, Any]) -> dict[str, Any]:
    ends = ("10.0.0.2", client_port, "10.0.0.1", 80)
    sip, sp, dip, dp = ends if forward else (ends[2], ends[3], ends[0], ends[1])
    return {"sip": sip, "sp": sp, "dip": dip, "dp": dp, "forward_direction": forward, **extra}


VALID_EXTRA = st.fixed_dictionaries({}, optional={
    "method": st.sampled_from(["GET", "POST"]), "uri_path": st.sampled_from(["/", "/x?y=1"]),
    "headers": st.dictionaries(st.sampled_from(["a", "host", "content-type"]),
                               st.sampled_from(["1", "text/plain"]), max_size=2),
    "body": st.text(max_size=8), "end_stream": st.booleans(),
    "trailers": st.dictionaries(st.sampled_from(["t", "grpc-status"]), st.just("0"), max_size=1),
    "delta_ms": st.sampled_from([0, 1, 2.5, 100]), "status": st.sampled_from([200, 404, 503]),
    "data": st.text(max_size=5), "close": st.sampled_from(["fin", "rst"]),
})


@pytest.fixture(scope="module")
def example_plugin() -> Plugin:
    return load_plugin(EXAMPLES / "myproject.wasm")


@FUZZ
@given(steps=st.lists(st.tuples(st.integers(50000, 50002), st.booleans(), VALID_EXTRA),
                      max_size=8),
       policy=st.sampled_from(["closed", "open", "reload"]))
def test_any_trace_the_loader_accepts_replays_without_an_exception(
    shared_engine: WasmtimeRuntime, example_plugin: Plugin,
    steps: list[tuple[int, bool, dict[str, Any]]], policy: str,
) -> None:
    packets = [_valid_packet(port, fwd, extra) for port, fwd, extra in steps]
    try:
        trace = parse_trace(packets, source="fuzz.json")
    except TraceError:
        return
    run = replay(example_plugin, trace, ReplayOptions(failure_policy=policy), check=False)
    report = to_json(run)
    assert report["summary"]["packets"] == len(packets)
    assert run.exit_code in (0, 1)


# -- every host function, arbitrary arguments, against a real guest --------------------------
U32_EDGES = [0, 1, 2, 3, 4, 6, 7, 8, 9, 16, 24, 0x30, 0x34, 0x38, 0xFF, 0xFFFF, 0x10000,
             0x1FFF0, 0x1FFFC, 0x1FFFF, 0x20000, 0x20001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0,
             0xFFFFFFFC, 0xFFFFFFFF]
I32 = st.one_of(st.sampled_from(U32_EDGES), st.integers(0, 0xFFFFFFFF), st.integers(0, 0x400),
                st.integers(0x100, 0x20000))
I64 = st.one_of(st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**32]),
                st.integers(-(2**63), 2**64 - 1))


def _args(sig: Signature) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[I64 if t == "i64" else I32 for t in sig.params])


TARGETS = [(V021, t) for t in targets(V021)] + [
    (V010, t) for t in targets(V010) if t[0] == "env" and not any(
        t[1] == u[1] for u in targets(V021))
]
ANSWERS = {s.name for s in Status} | {e.name for e in Errno} | {"NOSYS"}
CHECKED_KEYS = ("context_id", "flags", "request", "response", "local_reply", "header_changes",
                "actions", "undelivered_packets")
PACKETS = streams(3, armed=1, response_body=False)


class _Guest:
    def __init__(self, abi: str, target: Target, tmp: Path) -> None:
        self.plugin = load_plugin(write_wasm(tmp, caller_guest([target], abi=abi),
                                             f"fuzz-{target[1]}.wasm"))
        self.trace = parse_trace(PACKETS, source="fuzz.json")
        self.baseline = to_json(self.replay(orders(0xFFFFFFFF, ())))
        assert self.baseline["failures"] == []

    def replay(self, order: bytes) -> Any:
        return replay(self.plugin, self.trace, ReplayOptions(properties={"fuzz": order}),
                      check=False)


@pytest.fixture(scope="module")
def guests(shared_engine: WasmtimeRuntime,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, _Guest]:
    tmp = tmp_path_factory.mktemp("fuzz-guests")
    return {f"{abi}:{t[1]}": _Guest(abi, t, tmp) for abi, t in TARGETS}


@pytest.mark.parametrize(("abi", "target"), TARGETS, ids=[f"{a}:{t[1]}" for a, t in TARGETS])
def test_host_call_arguments_are_decoded_safely(guests: dict[str, _Guest], abi: str,
                                                target: Target) -> None:
    guest = guests[f"{abi}:{target[1]}"]
    base = guest.baseline["streams"]

    @FUZZ
    @given(args=_args(target[2]))
    def prop(args: tuple[int, ...]) -> None:
        run = guest.replay(orders(0, args))
        report = to_json(run)
        assert report["streams"][0] == base[0]  # finished before the garbage arrived
        for event in run.events:  # every answer is a status of the spec (or a WASI errno)
            if event.kind == "hostcall" and event.name != "proc_exit":
                result = event.result
                answer = result.get("status", result.get("errno")) if isinstance(
                    result, dict) else result
                assert answer in ANSWERS, (event.name, result)
        if report["failures"]:  # the guest may trap (proc_exit, its own memory trampled)
            assert {f["kind"] for f in report["failures"]} <= set(TRAP_KINDS)
            assert report["streams"][2]["flags"] == ["failed"]
            assert report["streams"][2]["local_reply"]["details"] == "wasm_fail_stream"
        else:
            for key in CHECKED_KEYS:
                assert report["streams"][2].get(key) == base[2].get(key), key

    prop()
