"""Golden files: `pwcli replay --golden FILE [--update-golden]` and pwcli.golden.compare."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pwcli.cli import main
from pwcli.golden import compare

from .conftest import EXAMPLES, TRACES, wat_module

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden" / "http_4pkts.json"
TRACE = str(TRACES / "http_4pkts.json")
WASM = str(EXAMPLES / "myproject.wasm")
S0 = "streams[0] (10.0.0.2:50124 -> 10.0.0.1:443)"
S1 = "streams[1] (10.0.0.2:50125 -> 10.0.0.1:443)"


def pwcli(*args: str) -> Result:
    return CliRunner().invoke(main, ["replay", TRACE, "--wasm", WASM, *args])


def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def test_committed_golden_matches_on_every_runtime(runtime: str) -> None:
    result = pwcli("--runtime", runtime, "--golden", str(GOLDEN))
    assert (result.exit_code, result.stdout) == (0, f"golden {GOLDEN}: matches\n")


def test_golden_is_the_json_report_byte_for_byte() -> None:
    result = pwcli("--format", "json")
    assert result.exit_code == 0
    assert result.stdout == GOLDEN.read_text()


def test_changed_header_fails_naming_it_then_update_then_pass(tmp_path: Path) -> None:
    """The issue's 'done when': one header the plugin adds, changed in the golden."""
    report = golden()
    headers = report["streams"][0]["response"]["headers"]
    assert headers[-1] == ["x-wasm-custom", "FOO"]
    headers[-1] = ["x-wasm-custom", "BAR"]
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")

    result = pwcli("--golden", str(path))
    assert result.exit_code == 1
    assert result.stdout == (
        f"golden {path}: 1 difference (golden -> this run)\n"
        f'  {S0}: response header x-wasm-custom: "BAR" -> "FOO"\n'
        "if the change is intended, run again with --update-golden\n"
    )

    result = pwcli("--golden", str(path), "--update-golden")
    assert (result.exit_code, result.stdout) == (
        0, f"golden {path}: written (1 difference from the old one)\n")
    assert path.read_text() == GOLDEN.read_text()
    result = pwcli("--golden", str(path))
    assert (result.exit_code, result.stdout) == (0, f"golden {path}: matches\n")
    result = pwcli("--golden", str(path), "--update-golden")
    assert (result.exit_code, result.stdout) == (0, f"golden {path}: up to date\n")


def test_missing_golden_fails_with_a_hint_and_update_creates_directories(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "golden.json"
    result = pwcli("--golden", str(path))
    assert result.exit_code == 1
    assert result.stdout == (
        f"golden {path}: no such file; run again with --update-golden to create it\n"
    )
    assert not path.exists()
    result = pwcli("--golden", str(path), "--update-golden")
    assert (result.exit_code, result.stdout) == (0, f"golden {path}: written\n")
    assert path.read_text() == GOLDEN.read_text()


def test_explicit_format_prints_the_report_and_checks_go_to_stderr(tmp_path: Path) -> None:
    result = pwcli("--golden", str(GOLDEN), "--format", "json")
    assert result.exit_code == 0
    assert result.stdout == GOLDEN.read_text()
    assert result.stderr == f"golden {GOLDEN}: matches\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "invalid JSON at line 1 column 2: Expecting property name enclosed in double quotes"),
        ('{"streams": []}', "not a pwcli JSON report (no format_version)"),
    ],
)
def test_unreadable_golden_is_bad_input(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "golden.json"
    path.write_text(text)
    result = pwcli("--golden", str(path))
    assert (result.exit_code, result.stderr) == (2, f"golden {path}: {message}\n")


def test_update_golden_needs_golden() -> None:
    result = pwcli("--update-golden")
    assert result.exit_code == 2
    assert "Error: --update-golden needs --golden FILE" in result.stderr


def test_a_pinned_trap_is_expected_behaviour(tmp_path: Path) -> None:
    """With --golden the exit status is the comparison's: a pinned failure exits 0."""
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps({"plugin": {"vm_configuration": "x"}, "packets": []}))
    runner = CliRunner()
    wat = tmp_path / "refuse.wasm"
    wat.write_bytes(wat_module(
        '(func (export "proxy_on_vm_start") (param i32 i32) (result i32) i32.const 0)'
        '(func (export "proxy_on_context_create") (param i32 i32))'
    ))
    args = ["replay", str(trace), "--wasm", str(wat)]
    assert runner.invoke(main, args).exit_code == 1  # without a golden: the plugin failed
    g = str(tmp_path / "g.json")
    assert runner.invoke(main, [*args, "--golden", g, "--update-golden"]).exit_code == 0
    result = runner.invoke(main, [*args, "--golden", g])
    assert (result.exit_code, result.stdout) == (0, f"golden {g}: matches\n")
    assert json.loads(Path(g).read_text())["vm"]["failure"]["kind"] == "configuration_refused"


# -- compare() -------------------------------------------------------------------------------
def test_compare_ignores_the_runtime() -> None:
    a, b = golden(), golden()
    b["runtime"] = {"name": "wamr", "version": "2.2.0"}
    assert compare(a, b) == []


def test_compare_names_streams_events_logs_and_fields() -> None:
    a = golden()
    b = copy.deepcopy(a)
    b["streams"][1]["response"]["body"] = "ABC"
    b["streams"][1]["request"]["headers"].append(["x-new", "1"])
    del b["streams"][1]["request"]["headers"][4]  # h11
    ev = b["streams"][1]["events"][3]
    ev["args"]["headers"] = 9
    del b["streams"][1]["events"][4]
    b["streams"][0]["logs"][0]["message"] = "hello"
    b["summary"]["logs"]["info"] = 1
    b["inputs"]["seed"] = 7
    assert compare(a, b) == [
        "inputs.seed: 0 -> 7",
        f'{S0}: logs[0]: 0ms [info] "called WASM plugin onCreate 2 from client 10.0.0.2:50124 '
        'port 50124"  ->  0ms [info] "hello"',
        f'{S1}: request header h11: removed (was "v11")',
        f'{S1}: request header x-new: added "1"',
        f'{S1}: response body: "ABCDEFGHI" -> "ABC"',
        f"{S1}: events[3]: callback proxy_on_request_headers: args.headers: 8 -> 9",
        f"{S1}: events[4]: removed: 15ms ctx 3 hostcall "
        'proxy_get_header_map_pairs(map=request_headers) -> OK "8 pairs"',
        "summary.logs.info: 48 -> 1",
    ]


def test_compare_header_order_and_stream_count() -> None:
    a = golden()
    b = copy.deepcopy(a)
    hs = b["streams"][0]["response"]["headers"]
    hs[1], hs[2] = hs[2], hs[1]
    extra = copy.deepcopy(b["streams"][1])
    extra["client"] = "10.0.0.2:50126"
    b["streams"].append(extra)
    assert compare(a, b)[:3] == [
        "streams: 2 -> 3 streams",
        f"{S0}: response headers: order changed: :status, rh1, content-length, "
        "x-envoy-upstream-service-time, x-wasm-custom -> :status, content-length, rh1, "
        "x-envoy-upstream-service-time, x-wasm-custom",
        "streams[2] (10.0.0.2:50126 -> 10.0.0.1:443): new in this run",
    ]


def test_compare_format_version() -> None:
    a, b = golden(), golden()
    b["format_version"] = 2
    assert compare(a, b) == [
        "format_version: 1 -> 2 (the golden was written by another pwcli version: "
        "regenerate it with --update-golden)"
    ]
