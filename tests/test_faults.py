"""Faulty plugins: every trap class, in every callback that matters, under every failure policy.

One WAT guest per fault class. The guest logs, looks up ``x-crash`` in the request headers and, when the
header is there, runs the fault; so in a four-stream trace only stream #1 crashes and the report of the
other streams shows what each policy does: ``closed`` (that stream and every later one get a 503
``wasm_fail_stream`` without entering the plugin), ``open`` (streams pass through untouched), ``reload``
(a fresh VM for the next stream) and ``--fail-fast`` (the replay stops at the first failure).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.engine import Run
from pwcli.report import dumps, make_console, render_table, to_json
from pwcli.runtimes.base import Limits

from .conftest import run_guest, wat_module, write_wasm

KiB = 1024
MiB = 1 << 20
BUDGET = 200_000  # fuel units: small, so a runaway loop ends in milliseconds

# fault name -> (WAT of $crash's body, canonical kind, words of the trap message, a frame)
FAULTS: dict[str, tuple[str, str, str, str]] = {
    "unreachable": ("unreachable", "unreachable", "wasm `unreachable` instruction executed", "crash"),
    "out_of_bounds": (
        "i32.const -16 i32.load drop", "memory_out_of_bounds", "out of bounds memory access", "crash"
    ),
    "divide_by_zero": (
        "i32.const 1 local.get $n i32.const 0 i32.mul i32.div_s drop",
        "integer_divide_by_zero", "integer divide by zero", "crash",
    ),
    "stack_overflow": (
        "local.get $n call $recurse drop", "stack_overflow", "call stack exhausted", "recurse"
    ),
    "proc_exit": ("i32.const 3 call $proc_exit", "proc_exit", "proc_exit(3)", "crash"),
    "runaway_loop": (
        "(loop $spin br $spin)", "timeout",
        f"the per-call budget of {BUDGET} fuel units ran out", "crash",
    ),
    "memory_bomb": (
        "(block $refused (loop $more i32.const 1 memory.grow i32.const -1 i32.eq br_if $refused"
        " br $more)) unreachable",
        "memory_limit", "the guest stopped with its memory at the cap of 4 MiB: memory.grow was"
        " refused (wasm trap: wasm `unreachable` instruction executed)", "crash",
    ),
}
LIMITS = Limits(fuel=BUDGET, max_memory=4 * MiB)


def fault_guest(fault: str, *, extra: str = "") -> bytes:
    body = FAULTS[fault][0]
    return wat_module(f"""
 (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
 (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
 (import "env" "proxy_get_header_map_value"
   (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
 (data (i32.const 16) "x-crash")
 (data (i32.const 48) "request")
 (func $recurse (param $n i32) (result i32) local.get $n i32.const 1 i32.add call $recurse)
 (func $crash (param $n i32) {body})
 (func $on_request_headers (export "proxy_on_request_headers")
   (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
   (drop (call $log (i32.const 2) (i32.const 48) (i32.const 7)))
   (if (i32.eqz (call $get_header (i32.const 0) (i32.const 16) (i32.const 7)
                                  (i32.const 32) (i32.const 36)))
     (then (call $crash (local.get $n))))
   i32.const 0)
 (func $on_context_create (export "proxy_on_context_create") (param i32 i32))
 (func $on_done (export "proxy_on_done") (param i32) (result i32) i32.const 1)
 {extra}
""")


def stream_packets(index: int, *, crash: bool = False) -> list[dict[str, Any]]:
    headers = {"a": "b", "x-crash": "yes"} if crash else {"a": "b"}
    port = 50000 + index
    return [
        {"sip": "10.0.0.2", "sp": port, "dip": "10.0.0.1", "dp": 80, "method": "GET",
         "uri_path": f"/s{index}", "headers": headers, "forward_direction": True, "delta_ms": 1},
        {"sip": "10.0.0.1", "sp": 80, "dip": "10.0.0.2", "dp": port, "headers": {"r": "1"},
         "body": f"resp{index}", "forward_direction": False, "delta_ms": 1},
    ]


# four streams, #1 crashes: packets 0-1 stream #0, 2-3 stream #1, 4-5 #2, 6-7 #3
PACKETS = [p for i in range(4) for p in stream_packets(i, crash=i == 1)]
STREAM_CALLBACKS = ["proxy_on_context_create", "proxy_on_request_headers", "proxy_on_done"]


def outline(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Per stream: context, flags, the response status and body the client gets, the local reply,
    the failure kind and the callbacks that entered the plugin."""
    out = []
    for s in report["streams"]:
        status = dict(s["response"]["headers"] or []).get(":status")
        out.append((
            s["index"], s["context_id"], s["flags"], status, s["response"]["body"],
            s["local_reply"]["details"] if s["local_reply"] else None,
            s["failure"]["kind"] if s["failure"] else None,
            [e["name"] for e in s["events"] if e["kind"] == "callback"],
        ))
    return out


def table_text(run: Run) -> str:
    from io import StringIO

    buf = StringIO()
    render_table(run, make_console(file=buf))
    return buf.getvalue()


def replay_fault(tmp_path: Path, fault: str, **options: Any) -> Run:
    options.setdefault("limits", LIMITS)
    return run_guest(tmp_path, fault_guest(fault), PACKETS, **options)


def _crash_failure(kind: str, ctx: int = 3) -> dict[str, Any]:
    f: dict[str, Any] = {"kind": kind, "callback": "proxy_on_request_headers", "context_id": ctx,
                         "t_ms": 3}
    if kind == "proc_exit":
        f["exit_code"] = 3
    if kind == "timeout":
        f["budget"] = BUDGET
    return f


def _ok(index: int, ctx: int) -> tuple[Any, ...]:
    return (index, ctx, [], "200", f"resp{index}", None, None, STREAM_CALLBACKS)


# -- every fault class under every policy -------------------------------------------------
@pytest.mark.parametrize("fault", list(FAULTS))
def test_closed_fails_the_stream_and_every_later_one(tmp_path: Path, fault: str) -> None:
    kind, words, frame = FAULTS[fault][1:]
    run = replay_fault(tmp_path, fault)
    report = to_json(run)
    assert run.exit_code == 1
    assert report["failures"] == [_crash_failure(kind)]
    assert report["vm"]["failure"] == _crash_failure(kind)
    assert outline(report) == [
        _ok(0, 2),
        (1, 3, ["failed"], "503", "", "wasm_fail_stream", kind,
         ["proxy_on_context_create", "proxy_on_request_headers"]),
        (2, 4, ["failed"], "503", "", "wasm_fail_stream", kind, []),
        (3, 5, ["failed"], "503", "", "wasm_fail_stream", kind, []),
    ]
    crashed = report["streams"][1]
    assert crashed["events"][-1] == {
        "t_ms": 3, "ctx": 3, "kind": "failure", "name": kind,
        "args": {"callback": "proxy_on_request_headers", "context_id": 3},
    }
    assert crashed["undelivered_packets"] == [3]
    assert [s["undelivered_packets"] for s in report["streams"][2:]] == [[5], [7]]
    assert crashed["logs"] == [{"t_ms": 3, "level": "info", "message": "request"}]
    assert report["summary"] | {"logs": None} == {
        "packets": 8, "streams": 4, "completed": 1, "failed": 3, "not_run": 0, "stalled": 0,
        "incomplete": 0, "local_replies": 3, "host_calls": report["summary"]["host_calls"],
        "callbacks": 6, "logs": None, "end_t_ms": 8, "exit_status": 1,
    }
    # The engine's words and the backtrace are in the table, never in the canonical JSON.
    text = table_text(run)
    assert f"failure: {kind} in proxy_on_request_headers (context 3) at 3 ms: " in text
    assert words in " ".join(text.split())
    assert f"    at {frame}" in text
    assert "    at on_request_headers" in text or kind == "stack_overflow"
    assert words not in dumps(report)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_open_lets_every_stream_through_untouched(tmp_path: Path, fault: str) -> None:
    kind = FAULTS[fault][1]
    run = replay_fault(tmp_path, fault, failure_policy="open")
    report = to_json(run)
    assert run.exit_code == 1
    assert report["failures"] == [_crash_failure(kind)]
    assert outline(report) == [
        _ok(0, 2),
        (1, 3, ["passed_through"], "200", "resp1", None, kind,
         ["proxy_on_context_create", "proxy_on_request_headers"]),
        (2, 4, ["passed_through"], "200", "resp2", None, None, []),
        (3, 5, ["passed_through"], "200", "resp3", None, None, []),
    ]
    for s in report["streams"][2:]:
        assert [h for h, _ in s["request"]["headers"]] == [
            ":authority", ":path", ":method", ":scheme", "a", "x-forwarded-proto", "x-request-id"]
        assert s["events"] == [] and s["header_changes"] == []
        assert "undelivered_packets" not in s


@pytest.mark.parametrize("fault", list(FAULTS))
def test_reload_starts_a_fresh_vm_for_the_next_stream(tmp_path: Path, fault: str) -> None:
    kind = FAULTS[fault][1]
    run = replay_fault(tmp_path, fault, failure_policy="reload")
    report = to_json(run)
    assert run.exit_code == 1
    assert report["failures"] == [_crash_failure(kind)]
    # The new VM gets root context 5 and runs the next streams; nothing of the old one is used.
    assert outline(report) == [
        _ok(0, 2),
        (1, 3, ["failed"], "503", "", "wasm_fail_stream", kind,
         ["proxy_on_context_create", "proxy_on_request_headers"]),
        _ok(2, 5),
        _ok(3, 6),
    ]
    assert report["streams"][2]["events"][0]["args"] == {"context_id": 5, "parent_context_id": 4}
    reloads = [e for e in report["vm"]["events"] if e["name"] == "vm_reload"]
    assert reloads == [{"t_ms": 5, "ctx": 0, "kind": "note", "name": "vm_reload",
                        "args": {"after": kind}}]
    assert [e["name"] for e in report["vm"]["events"] if e["kind"] == "callback"] == [
        "proxy_on_context_create", "proxy_on_context_create"
    ]
    assert report["summary"]["completed"] == 3 and report["summary"]["failed"] == 1


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fail_fast_stops_at_the_first_failure(tmp_path: Path, fault: str) -> None:
    kind = FAULTS[fault][1]
    run = replay_fault(tmp_path, fault, fail_fast=True)
    report = to_json(run)
    assert run.exit_code == 1
    assert report["failures"] == [_crash_failure(kind)]
    assert outline(report) == [
        _ok(0, 2),
        (1, 3, ["failed"], "503", "", "wasm_fail_stream", kind,
         ["proxy_on_context_create", "proxy_on_request_headers"]),
    ]
    assert report["warnings"] == ["--fail-fast: stopped before packet 3"]
    assert report["summary"]["packets"] == 3


def test_reload_survives_a_crash_in_every_vm(tmp_path: Path) -> None:
    """Every stream crashes: each gets its own VM, its own failure and its own 503."""
    packets = [p for i in range(3) for p in stream_packets(i, crash=True)]
    run = run_guest(tmp_path, fault_guest("unreachable"), packets, failure_policy="reload")
    report = to_json(run)
    assert [(f["context_id"], f["kind"]) for f in report["failures"]] == [
        (2, "unreachable"), (4, "unreachable"), (6, "unreachable")
    ]
    assert [(s["context_id"], s["flags"], s["failure"]["context_id"]) for s in report["streams"]] == [
        (2, ["failed"], 2), (4, ["failed"], 4), (6, ["failed"], 6)
    ]
    assert len([e for e in report["vm"]["events"] if e["name"] == "vm_reload"]) == 2


def test_reload_fails_the_streams_still_open_on_the_failed_vm(tmp_path: Path) -> None:
    """Stream #0 is waiting for its response when stream #1 crashes the VM: the new VM never saw
    stream #0, so it stays failed (closed) and only later streams run on the new VM."""
    s0, s1, s2 = stream_packets(0), stream_packets(1, crash=True), stream_packets(2)
    packets = [s0[0], s1[0], s0[1], s1[1], *s2]
    run = run_guest(tmp_path, fault_guest("unreachable"), packets, failure_policy="reload")
    assert outline(to_json(run)) == [
        (0, 2, ["failed"], "503", "", "wasm_fail_stream", "unreachable",
         ["proxy_on_context_create", "proxy_on_request_headers"]),
        (1, 3, ["failed"], "503", "", "wasm_fail_stream", "unreachable",
         ["proxy_on_context_create", "proxy_on_request_headers"]),
        _ok(2, 5),
    ]


def test_open_passes_a_paused_stream_through(tmp_path: Path) -> None:
    """Stream #0 is waiting for its response when #1 crashes; fail-open forwards its response."""
    s0, s1 = stream_packets(0), stream_packets(1, crash=True)
    run = run_guest(tmp_path, fault_guest("unreachable"), [s0[0], s1[0], s0[1], s1[1]],
                    failure_policy="open")
    assert outline(to_json(run)) == [
        (0, 2, ["passed_through"], "200", "resp0", None, None,
         ["proxy_on_context_create", "proxy_on_request_headers"]),
        (1, 3, ["passed_through"], "200", "resp1", None, "unreachable",
         ["proxy_on_context_create", "proxy_on_request_headers"]),
    ]


# -- runaway guests and memory caps ---------------------------------------------------------
def test_the_budget_is_deterministic(tmp_path: Path) -> None:
    """A timeout from the budget is pinned by the report: same bytes, same fuel, every run."""
    reports, fuel = set(), set()
    for _ in range(3):
        run = replay_fault(tmp_path, "runaway_loop")
        reports.add(dumps(to_json(run)))
        fuel.add(run.fuel)
    assert len(reports) == 1 and len(fuel) == 1
    (consumed,) = fuel
    assert consumed >= BUDGET  # the crash used it all; the other streams' callbacks a little more
    assert '"budget": 200000' in reports.pop()


def test_the_wall_clock_guard_stops_an_unmetered_loop(tmp_path: Path) -> None:
    run = replay_fault(tmp_path, "runaway_loop",
                       limits=Limits(fuel=None, max_memory=4 * MiB, wall_seconds=0.3))
    report = to_json(run)
    assert report["failures"] == [
        {"kind": "timeout", "callback": "proxy_on_request_headers", "context_id": 3, "t_ms": 3}
    ]
    assert "the wall-clock guard of 0.3 s ran out" in table_text(run)


def test_a_module_whose_minimum_memory_exceeds_the_cap_is_a_vm_failure(tmp_path: Path) -> None:
    wasm = wat_module('(memory (export "memory") 128)', memory=False)  # 8 MiB at start
    run = run_guest(tmp_path, wasm, PACKETS, limits=Limits(max_memory=4 * MiB))
    report = to_json(run)
    assert report["vm"]["failure"] == {
        "kind": "memory_limit", "callback": "instantiate", "context_id": 0, "t_ms": 0
    }
    assert [s["flags"] for s in report["streams"]] == [["not_run"]] * 4
    assert run.exit_code == 1


# -- traps outside the stream callbacks ----------------------------------------------------
NOT_RUN = [(i, 0, ["not_run"], None, "", None, None, []) for i in range(4)]


def test_trap_in_initialize_fails_the_vm_and_lists_the_streams_not_run(tmp_path: Path) -> None:
    wasm = fault_guest("unreachable", extra='(func $init (export "_initialize") unreachable)')
    run = run_guest(tmp_path, wasm, PACKETS)
    report = to_json(run)
    assert run.exit_code == 1
    failure = {"kind": "unreachable", "callback": "_initialize", "context_id": 0, "t_ms": 0}
    assert report["vm"]["failure"] == failure and report["failures"] == [failure]
    assert report["vm"]["events"] == [
        {"t_ms": 0, "ctx": 0, "kind": "callback", "name": "_initialize", "result": "trap"},
        {"t_ms": 0, "ctx": 0, "kind": "failure", "name": "unreachable",
         "args": {"callback": "_initialize", "context_id": 0}},
    ]
    assert outline(report) == NOT_RUN
    assert report["summary"]["not_run"] == 4 and report["summary"]["completed"] == 0
    text = table_text(run)
    assert "failure: unreachable in _initialize (context 0)" in text and "    at init" in text
    assert "4 not run" in text


def test_trap_in_the_wasm_start_function_fails_the_vm(tmp_path: Path) -> None:
    wasm = fault_guest("unreachable", extra="(func $start unreachable) (start $start)")
    run = run_guest(tmp_path, wasm, PACKETS)
    report = to_json(run)
    failure = {"kind": "unreachable", "callback": "instantiate", "context_id": 0, "t_ms": 0}
    assert report["vm"]["failure"] == failure and report["failures"] == [failure]
    assert outline(report) == NOT_RUN
    assert "    at start" in table_text(run)


@pytest.mark.parametrize("policy", ["closed", "open", "reload"])
def test_trap_in_configure_fails_the_vm_whatever_the_policy(tmp_path: Path, policy: str) -> None:
    extra = """(func $on_configure (export "proxy_on_configure") (param i32 i32) (result i32)
                 i32.const 0 i32.const 0 i32.div_u)"""
    run = run_guest(tmp_path, fault_guest("unreachable", extra=extra), PACKETS,
                    failure_policy=policy)
    report = to_json(run)
    assert report["vm"]["failure"] == {
        "kind": "integer_divide_by_zero", "callback": "proxy_on_configure", "context_id": 1,
        "t_ms": 0,
    }
    assert outline(report) == NOT_RUN
    assert run.exit_code == 1
    assert "    at on_configure" in table_text(run)


def test_configure_returning_false_is_a_refused_configuration(tmp_path: Path) -> None:
    extra = """(func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 0)"""
    run = run_guest(tmp_path, fault_guest("unreachable", extra=extra), PACKETS)
    report = to_json(run)
    why = "proxy_on_configure returned false: the plugin refused its configuration"
    assert report["vm"]["refused_configuration"] == why
    assert report["vm"]["failure"] == {
        "kind": "configuration_refused", "callback": "proxy_on_configure", "context_id": 1,
        "t_ms": 0,
    }
    assert report["failures"] == []
    assert outline(report) == NOT_RUN
    assert run.exit_code == 1
    assert f"refused: {why}" in table_text(run)


def test_vm_start_returning_false_names_its_callback(tmp_path: Path) -> None:
    extra = """(func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 0)"""
    report = to_json(run_guest(tmp_path, fault_guest("unreachable", extra=extra), PACKETS))
    assert report["vm"]["failure"]["callback"] == "proxy_on_vm_start"
    assert report["vm"]["refused_configuration"] == (
        "proxy_on_vm_start returned false: the VM refused to start"
    )


def test_trap_in_the_allocator_during_a_host_call(tmp_path: Path) -> None:
    """proxy_get_header_map_value allocates the value through malloc; malloc traps: the trap is
    the callback's, with malloc on top of the backtrace."""
    wasm = wat_module("""
 (import "env" "proxy_get_header_map_value"
   (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
 (data (i32.const 16) "x-crash")
 (func $malloc (export "malloc") (param i32) (result i32) unreachable)
 (func $on_request_headers (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
   (drop (call $get_header (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 32) (i32.const 36)))
   i32.const 0)
""", alloc=False)
    run = run_guest(tmp_path, wasm, PACKETS)
    report = to_json(run)
    assert report["failures"] == [_crash_failure("unreachable")]
    assert [o[2] for o in outline(report)] == [[], ["failed"], ["failed"], ["failed"]]
    text = table_text(run)
    assert text.index("    at malloc") < text.index("    at on_request_headers")


def test_trap_in_a_late_callback_keeps_what_was_forwarded(tmp_path: Path) -> None:
    """A trap in proxy_on_done: the stream had completed; it keeps its response and is marked."""
    wasm = wat_module("""
 (func (export "proxy_on_done") (param i32) (result i32) unreachable)
""")
    run = run_guest(tmp_path, wasm, PACKETS[:4])
    report = to_json(run)
    assert report["failures"] == [
        {"kind": "unreachable", "callback": "proxy_on_done", "context_id": 2, "t_ms": 2}
    ]
    assert [(s["flags"], s["response"]["body"], s["failure"]["kind"]) for s in report["streams"]] == [
        ([], "resp0", "unreachable"), (["failed"], "", "unreachable")
    ]


# -- the CLI: exit status, policies and the table -------------------------------------------
@pytest.mark.parametrize("policy", ["closed", "open", "reload"])
def test_cli_reports_a_trap_with_exit_status_1(tmp_path: Path, policy: str) -> None:
    wasm = write_wasm(tmp_path, fault_guest("stack_overflow"))
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(PACKETS))
    runner = CliRunner()
    table = runner.invoke(main, ["replay", str(trace), "--wasm", str(wasm),
                                 "--failure-policy", policy])
    assert table.exit_code == 1, table.output
    assert "failure: stack_overflow in proxy_on_request_headers (context 3) at 3 ms: " in table.output
    assert "    at recurse" in table.output and "repeated" in table.output
    assert "Traceback" not in table.output
    js = runner.invoke(main, ["replay", str(trace), "--wasm", str(wasm), "--format", "json",
                              "--failure-policy", policy])
    assert js.exit_code == 1
    report = json.loads(js.output)
    assert report["failures"][0]["kind"] == "stack_overflow"
    assert "recurse" not in js.output and "call stack exhausted" not in js.output


def test_cli_budget_option_sets_the_fuel(tmp_path: Path) -> None:
    wasm = write_wasm(tmp_path, fault_guest("runaway_loop"))
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(PACKETS))
    result = CliRunner().invoke(main, ["replay", str(trace), "--wasm", str(wasm), "--budget",
                                       "12345", "--format", "json", "--fail-fast"])
    assert result.exit_code == 1
    assert json.loads(result.output)["failures"] == [
        {"kind": "timeout", "callback": "proxy_on_request_headers", "context_id": 3, "t_ms": 3,
         "budget": 12345}
    ]


def test_cli_max_memory_option_caps_the_guest(tmp_path: Path) -> None:
    wasm = write_wasm(tmp_path, fault_guest("memory_bomb"))
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(PACKETS))
    result = CliRunner().invoke(main, ["replay", str(trace), "--wasm", str(wasm),
                                       "--max-memory", "2", "--format", "json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["failures"][0]["kind"] == "memory_limit"


# -- garbage arguments: the plugin gets the spec's status, pwcli never raises ----------------
INVALID, BAD, NOT_FOUND, OK = 6, 2, 1, 0
EFAULT, EINVAL, EBADF, ENOTSUP, ENOENT = 21, 28, 8, 58, 44
TOP = 0xFFFFFFFF  # -1 as an i32; the host sees every i32 unsigned
END = 2 * 65536  # the caller guest's memory is two pages

# (function, arguments, status in proxy_on_request_headers [, status in proxy_on_request_body])
GARBAGE: list[tuple[str, tuple[int, ...], int | tuple[int, int]]] = [
    # pointers and lengths out of range, lengths near 2^32
    ("proxy_log", (2, 0xFFFFFFF0, 32), INVALID),
    ("proxy_log", (2, 16, TOP), INVALID),
    ("proxy_log", (2, END - 2, 4), INVALID),
    ("proxy_log", (2, 0x80000000, 0x80000000), INVALID),
    # (the request headers are out of reach in the body callback: BAD_ARGUMENT comes first there)
    ("proxy_get_header_map_value", (0, 16, 6, 0xFFFFFFFC, 0x34), (INVALID, BAD)),
    ("proxy_get_header_map_value", (0, 16, 6, 0x30, END), (INVALID, BAD)),
    ("proxy_get_header_map_value", (0, TOP, 6, 0x30, 0x34), INVALID),
    ("proxy_get_header_map_pairs", (0, END - 3, 0x34), INVALID),  # no pairs is still written
    ("proxy_get_header_map_size", (0, TOP), INVALID),
    ("proxy_add_header_map_value", (0, 16, 0x7FFFFFFF, 24, 4), INVALID),
    ("proxy_replace_header_map_value", (0, 16, 6, TOP - 8, 16), INVALID),
    ("proxy_remove_header_map_value", (0, TOP, TOP), INVALID),
    ("proxy_set_header_map_pairs", (0, 0x30, TOP), INVALID),
    ("proxy_get_buffer_status", (0, TOP, 0x34), INVALID),
    ("proxy_set_buffer_bytes", (0, 0, 0, TOP, 1), INVALID),
    ("proxy_get_property", (0xFFFFFFF0, 100, 0x30, 0x34), INVALID),
    ("proxy_set_property", (24, 4, 0x30, TOP), INVALID),
    ("proxy_send_local_response", (403, 0, 0, 0, 0, 0xFFFFFF00, 0xFF, TOP), INVALID),
    ("proxy_http_call", (TOP, 4, 0, 0, 0, 0, 0, 0, 1000, 0x30), INVALID),
    ("proxy_grpc_call", (24, 4, 24, 4, 24, 4, 0, 0, 24, 4, 1000, TOP), INVALID),
    ("proxy_define_metric", (0, 24, 4, TOP), INVALID),
    ("proxy_get_metric", (4, TOP), INVALID),
    ("proxy_get_current_time_nanoseconds", (END - 4,), INVALID),
    ("proxy_get_log_level", (TOP,), INVALID),
    ("proxy_get_shared_data", (24, TOP, 0x30, 0x34, 0x38), INVALID),
    ("proxy_enqueue_shared_queue", (1, TOP, 2), INVALID),
    ("proxy_call_foreign_function", (TOP, 1, 0, 0, 0x30, 0x34), INVALID),
    # unknown map, buffer, stream and metric types
    ("proxy_get_header_map_value", (99, 16, 6, 0x30, 0x34), BAD),
    ("proxy_get_header_map_pairs", (8, 0x30, 0x34), BAD),
    ("proxy_get_header_map_size", (TOP, 0x30), BAD),
    ("proxy_add_header_map_value", (12, 16, 6, 24, 4), BAD),
    ("proxy_set_header_map_pairs", (TOP, 0x30, 0), BAD),
    ("proxy_get_buffer_bytes", (99, 0, 10, 0x30, 0x34), BAD),
    ("proxy_get_buffer_status", (9, 0x30, 0x34), BAD),
    ("proxy_set_buffer_bytes", (TOP, 0, 0, 16, 2), BAD),
    ("proxy_continue_stream", (7,), BAD),
    ("proxy_close_stream", (TOP,), BAD),
    ("proxy_define_metric", (3, 24, 4, 0x30), BAD),
    ("proxy_log", (9, 16, 4), BAD),
    ("proxy_set_effective_context", (999,), BAD),
    # unknown ids
    ("proxy_increment_metric", (12345, 1), NOT_FOUND),
    ("proxy_record_metric", (12345, -1), NOT_FOUND),
    ("proxy_get_metric", (12345, 0x30), NOT_FOUND),
    ("proxy_grpc_send", (77, 0, 0, 0), NOT_FOUND),
    ("proxy_grpc_cancel", (TOP,), NOT_FOUND),
    ("proxy_dequeue_shared_queue", (77, 0x30, 0x34), NOT_FOUND),
    # no body in the headers callback, start > size in the body's: empty and OK, as Envoy
    ("proxy_get_buffer_bytes", (0, TOP, TOP, 0x30, 0x34), OK),
    ("proxy_done", (), NOT_FOUND),
    # WASI: EFAULT for a bad pointer, EINVAL for a bad count
    ("fd_write", (1, 0xFFFFFFF0, 1, 0x30), EFAULT),
    ("fd_write", (1, 16, TOP, 0x30), EINVAL),
    ("fd_write", (1, 0x30, 1, TOP), EFAULT),
    ("fd_write", (77, 0x30, 1, 0x34), EBADF),
    ("random_get", (0xFFFFFFF0, 64), EFAULT),
    ("random_get", (0x30, 0x10001), EINVAL),
    ("clock_time_get", (0, 0, END - 4), EFAULT),
    ("clock_time_get", (7, 0, 0x30), ENOTSUP),
    ("args_sizes_get", (TOP, 0), EFAULT),
    ("environ_sizes_get", (0x30, TOP - 1), EFAULT),
    ("environ_get", (TOP, TOP), OK),  # nothing to write: the environment is empty
    ("fd_fdstat_get", (1, END - 8), EFAULT),
    ("path_open", (3, 0, 0xFFFFFFF0, 100, 0, 0, 0, 0, 0x30), EFAULT),
    ("poll_oneoff", (0, 0, 1, TOP), EFAULT),
]


def _one(name: str, abi: str = "0.2.1") -> list[Any]:
    from .hostile import targets

    return [t for t in targets(abi) if t[1] == name]


@pytest.mark.parametrize(("name", "args", "status"), GARBAGE,
                         ids=[f"{n}{a}" for n, a, _ in GARBAGE])
def test_garbage_arguments_get_the_spec_status(
    tmp_path: Path, name: str, args: tuple[int, ...], status: int | tuple[int, int]
) -> None:
    from .hostile import caller_guest, orders, replay_orders, streams

    path = write_wasm(tmp_path, caller_guest(_one(name)))
    baseline, _ = replay_orders(path, streams(), orders(TOP, ()))
    run, got = replay_orders(path, streams(), orders(0, args))
    # called in proxy_on_request_headers and in each proxy_on_request_body (the body, then the
    # empty frame that ends the request, as Envoy's HTTP/1 codec delivers it)
    want = status if isinstance(status, tuple) else (status, status)
    assert got == (*want, want[-1])
    assert run.failures == [] and run.exit_code == 0
    report, base = to_json(run), to_json(baseline)
    for i in (0, 2):  # the other streams' report is intact
        assert report["streams"][i] == base["streams"][i]


BUMP = "(global $top (mut i32) (i32.const 0x10000))"
BUMP_ALLOC = "global.get $top global.get $top local.get $n i32.add global.set $top"


def _guest_with_malloc(bad: str, *, head: str = "") -> bytes:
    """A malloc that behaves for the guest's own small requests (its orders, the x-fuzz value)
    and runs ``bad`` for the headers the host hands over (more than 64 bytes)."""
    from .hostile import caller_guest

    malloc = (f'(func $malloc (export "malloc") (param $n i32) (result i32)'
              f" (if (result i32) (i32.gt_u (local.get $n) (i32.const 64))"
              f" (then {bad}) (else {BUMP_ALLOC})))")
    return caller_guest(_one("proxy_get_header_map_pairs") + _one("proxy_get_header_map_size"),
                        malloc=malloc, extra=BUMP, head=head)


@pytest.mark.parametrize("bad", ["i32.const 0", "i32.const 0xFFFFFF00", "i32.const 0x1FFF0",
                                 "i32.const -1"])
def test_an_allocator_returning_0_or_out_of_range_gets_invalid_memory_access(
    tmp_path: Path, bad: str
) -> None:
    from .hostile import orders, replay_orders, streams

    path = write_wasm(tmp_path, _guest_with_malloc(bad))
    run, got = replay_orders(path, streams(), orders(0, (0, 0x30, 0x34)))
    # in the body callbacks the request headers are out of reach: no pairs, nothing to allocate
    assert got == (INVALID, OK, OK)
    assert run.exit_code == 0
    events = [e for e in run.events if e.name == "proxy_get_header_map_pairs"]
    assert [e.result for e in events] == ["INVALID_MEMORY_ACCESS", {"status": "OK", "value": "0 pairs"},
                                          {"status": "OK", "value": "0 pairs"}]
    assert events[0].args["error"] == "allocation failed"


def test_a_host_call_from_inside_malloc_is_a_restricted_callback_trap(tmp_path: Path) -> None:
    from .hostile import orders, replay_orders, streams

    head = '(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))'
    # proxy_log is allowed in the allocator; proxy_get_header_map_size is not
    bad = (f"(drop (call $log (i32.const 2) (i32.const 16) (i32.const 6)))"
           f" (drop (call $h3 (i32.const 0) (i32.const 0x50))) {BUMP_ALLOC}")
    path = write_wasm(tmp_path, _guest_with_malloc(bad, head=head))
    run, _ = replay_orders(path, streams(), orders(0, (0, 0x30, 0x34)))
    report = to_json(run)
    assert report["failures"] == [{"kind": "restricted_callback",
                                   "callback": "proxy_on_request_headers", "context_id": 3,
                                   "t_ms": 3}]
    assert [s["flags"] for s in report["streams"]] == [[], ["failed"], ["failed"]]
    assert "proxy_get_header_map_size is not allowed while the allocator runs" in " ".join(
        table_text(run).split())
    # --lenient lets it through, as a note in the report
    lenient, got = replay_orders(path, streams(), orders(0, (0, 0x30, 0x34)), lenient=True)
    assert lenient.failures == [] and got == (OK, OK, OK)


ODD_IMPORTS = """
 (import "env" "proxy_done" (func $done (result i32)))
 (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
 (import "env" "proxy_close_stream" (func $close (param i32) (result i32)))
 (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
 (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))
 (import "env" "proxy_send_local_response"
   (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
 (import "env" "proxy_get_header_map_size" (func $size (param i32 i32) (result i32)))
 (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
"""
ODD = """
 (func $poke (param $ctx i32)
   (drop (call $done))
   (drop (call $continue (i32.const 0)))
   (drop (call $continue (i32.const 2)))
   (drop (call $size (i32.const 0) (i32.const 0x50)))
   (drop (call $set_buffer (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
   (drop (call $effective (i32.const 2)))
   (drop (call $effective (local.get $ctx)))
   (drop (call $reply (i32.const 418) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                      (i32.const 0) (i32.const 0) (i32.const -1))))
 (func (export "_initialize")
   (drop (call $tick (i32.const 1))) (drop (call $effective (i32.const 1))) (call $poke (i32.const 1)))
 (func (export "proxy_on_vm_start") (param $c i32) (param i32) (result i32) (call $poke (local.get $c)) i32.const 1)
 (func (export "proxy_on_configure") (param $c i32) (param i32) (result i32) (call $poke (local.get $c)) i32.const 1)
 (func (export "proxy_on_log") (param $c i32) (call $poke (local.get $c)))
 (func (export "proxy_on_delete") (param $c i32) (call $poke (local.get $c)) (drop (call $close (i32.const 1))))
 (func (export "proxy_on_tick") (param $c i32) (call $poke (local.get $c)))
"""


def test_host_calls_at_odd_moments_never_raise(tmp_path: Path) -> None:
    """Stream control, local replies and context switches from start-up, configure, log, delete
    and tick: refused with a status or ignored, never an exception; --lenient lets start-up run
    them, and they still answer with a status."""
    from .hostile import caller_guest, orders, replay_orders, streams

    path = write_wasm(tmp_path, caller_guest([], extra=ODD, head=ODD_IMPORTS))
    strict, _ = replay_orders(path, streams(), orders(TOP, ()))
    assert [f.kind for f in strict.failures] == ["restricted_callback"]  # start-up, as Envoy
    assert strict.failures[0].callback == "_initialize"
    run, _ = replay_orders(path, streams(), orders(TOP, ()), lenient=True, drain_ms=3)
    report = to_json(run)
    assert report["failures"] == [] and run.exit_code == 0
    assert [(s["flags"], dict(s["response"]["headers"])[":status"]) for s in report["streams"]] == [
        ([], "200"), ([], "200"), ([], "200")
    ]
    results = {(e.name, str(e.result)) for e in run.events if e.kind == "hostcall"}
    assert ("proxy_done", "NOT_FOUND") in results
    assert ("proxy_send_local_response", "NOT_FOUND") in results
    assert ("proxy_set_effective_context", "BAD_ARGUMENT") in results


# -- the same report on every runtime ---------------------------------------------------------
@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_runtime_reports_a_fault_the_same_way(tmp_path: Path, runtime: str,
                                                    fault: str) -> None:
    """The canonical JSON is the same bytes on Wasmtime, WAMR and WasmEdge (the budget counted
    in each engine's unit, one per instruction); only the runtime's name differs."""
    def canonical(rt: str) -> str:
        report = to_json(replay_fault(tmp_path, fault, runtime=rt))
        report.pop("runtime")
        report["inputs"].pop("runtime", None)
        return dumps(report)

    assert canonical(runtime) == canonical("wasmtime")


# -- TCP streams ----------------------------------------------------------------------------
TCP_GUEST = """
 (func $on_downstream_data (export "proxy_on_downstream_data")
   (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
   (if (i32.eq (local.get $ctx) (i32.const 3)) (then unreachable))
   i32.const 0)
 (func (export "proxy_on_upstream_data") (param i32 i32 i32) (result i32) i32.const 0)
 (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
"""


def _tcp(port: int, forward: bool, data: str | None = None, close: str | None = None
         ) -> dict[str, Any]:
    ends = ("10.0.0.2", port, "10.0.0.1", 9000)
    sip, sp, dip, dp = ends if forward else (ends[2], ends[3], ends[0], ends[1])
    p: dict[str, Any] = {"sip": sip, "sp": sp, "dip": dip, "dp": dp, "forward_direction": forward,
                         "delta_ms": 1}
    if data is not None:
        p["data"] = data
    if close is not None:
        p["close"] = close
    return p


TCP_PACKETS = [
    _tcp(1, True, "a1"),  # connection A, context 2
    _tcp(2, True, "x"),  # connection B, context 3: the guest traps
    _tcp(1, False, "b1"),
    _tcp(1, True, close="fin"),
    _tcp(2, False, "y"),
    _tcp(3, True, "c1"),  # connection C, context 4
]


@pytest.mark.parametrize(("policy", "expected"), [
    ("closed", [(2, ["failed"], "a1", "", "unreachable", [2, 3]),
                (3, ["failed"], "", "", "unreachable", [4]),
                (4, ["failed"], "", "", "unreachable", [5])]),
    ("open", [(2, ["passed_through"], "a1", "b1", None, None),
              (3, ["incomplete", "passed_through"], "x", "y", "unreachable", None),
              (4, ["incomplete", "passed_through"], "c1", "", None, None)]),
    ("reload", [(2, ["failed"], "a1", "", "unreachable", [2, 3]),
                (3, ["failed"], "", "", "unreachable", [4]),
                (5, ["incomplete"], "c1", "", None, None)]),
])
def test_a_trap_on_a_tcp_stream(tmp_path: Path, policy: str, expected: list[Any]) -> None:
    """Envoy closes the connections of a failed VM (what was forwarded stays, no 503 on TCP);
    fail-open forwards the data untouched; reload serves new connections from a fresh VM."""
    run = run_guest(tmp_path, wat_module(TCP_GUEST), TCP_PACKETS, failure_policy=policy)
    report = to_json(run)
    assert report["failures"] == [{"kind": "unreachable", "callback": "proxy_on_downstream_data",
                                   "context_id": 3, "t_ms": 2}]
    assert [(s["context_id"], s["flags"], s["downstream"], s["upstream"],
             s["failure"]["kind"] if s["failure"] else None, s.get("undelivered_packets"))
            for s in report["streams"]] == expected
    assert all(s["local_reply"] is None for s in report["streams"])
    assert run.exit_code == 1
