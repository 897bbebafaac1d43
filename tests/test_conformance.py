"""Conformance across runtimes: the same inputs give the same JSON report on every backend.

Each example plugin with its sample trace, and a guest for every fault class, replayed on every
available runtime: the canonical JSON reports are equal once ``runtime.name`` is dropped (fuel
counts, engine messages and frames differ between engines and never reach the JSON). A backend
whose library is absent is reported here as skipped, with the reason (where pwcli looked, how to
install it); on the command line it is one line and exit status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pwcli import runtimes
from pwcli.cli import main
from pwcli.plugin import load_plugin
from pwcli.engine import ReplayOptions, replay
from pwcli.report import dumps, to_json
from pwcli.trace import load_trace

from .conftest import AVAILABLE, EXAMPLES, ROOT, TRACES, run_guest
from .test_faults import FAULTS, LIMITS, PACKETS, fault_guest

EXAMPLE_TRACES = [
    ("myproject.wasm", "http_4pkts.json"),
    ("c_abi010.wasm", "c_abi010_tick.json"),
    ("as_headers.wasm", "as_headers.json"),
    ("as_deny.wasm", "as_deny.json"),
    ("as_httpcall.wasm", "as_httpcall.json"),
    ("as_body.wasm", "as_body.json"),
    ("go_wasip1.wasm", "go_headers.json"),
    ("rust_tcp.wasm", "rust_tcp.json"),
]
LIBRARIES = {"wamr": "PWCLI_WAMR_LIB", "wasmedge": "PWCLI_WASMEDGE_LIB"}


def without_runtime(report: dict[str, Any]) -> str:
    report = json.loads(dumps(report))
    assert report["runtime"].pop("name") in runtimes.BACKENDS
    return dumps(report)


@pytest.mark.parametrize("name", list(runtimes.BACKENDS))
def test_backend_is_available(name: str) -> None:
    """One line per backend: passed when its library is here, else skipped with the reason."""
    info = runtimes.describe(name)
    if not info.available:
        pytest.skip(f"runtime {name} not available: {info.detail}")
    assert info.version and info.location


@pytest.mark.parametrize("wasm,trace", EXAMPLE_TRACES, ids=[w for w, _ in EXAMPLE_TRACES])
def test_example_reports_are_identical_on_every_runtime(wasm: str, trace: str) -> None:
    reports = {}
    for name in AVAILABLE:
        run = replay(
            load_plugin(EXAMPLES / wasm), load_trace(TRACES / trace), ReplayOptions(runtime=name)
        )
        report = to_json(run)
        assert report["runtime"] == {"name": name}
        reports[name] = without_runtime(report)
    assert "wasmtime" in reports
    for name, text in reports.items():
        assert text == reports["wasmtime"], f"{name} differs from wasmtime on {wasm}"


# -- faults: the same failure report on every engine -----------------------------------------
@pytest.mark.parametrize("policy", ["closed", "reload"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_reports_are_identical_on_every_runtime(
    tmp_path: Path, fault: str, policy: str
) -> None:
    wasm = fault_guest(fault)
    reports = {}
    for name in AVAILABLE:
        run = run_guest(
            tmp_path, wasm, PACKETS, runtime=name, limits=LIMITS, failure_policy=policy
        )
        report = to_json(run)
        assert run.exit_code == 1
        reports[name] = without_runtime(report)
        failures = report["failures"]
        assert failures and failures[0]["callback"] == "proxy_on_request_headers"
        assert failures[0]["kind"] == FAULTS[fault][1], name
    for name, text in reports.items():
        assert text == reports["wasmtime"], f"{name} differs from wasmtime on {fault}/{policy}"


# -- the command line -----------------------------------------------------------------------
@pytest.mark.parametrize("name", AVAILABLE)
def test_cli_replay_gives_the_same_json_on_every_runtime(name: str) -> None:
    args = [
        "replay",
        str(TRACES / "http_4pkts.json"),
        "--wasm",
        str(EXAMPLES / "myproject.wasm"),
        "--format",
        "json",
    ]
    base = CliRunner().invoke(main, args)
    other = CliRunner().invoke(main, [*args, "--runtime", name])
    assert base.exit_code == other.exit_code == 0, other.output
    assert without_runtime(json.loads(other.output)) == without_runtime(json.loads(base.output))


@pytest.mark.parametrize("name", list(LIBRARIES))
def test_cli_replay_with_the_library_missing_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(LIBRARIES[name], "/nonexistent/lib.so")
    result = CliRunner().invoke(
        main,
        [
            "replay",
            str(TRACES / "http_4pkts.json"),
            "--wasm",
            str(EXAMPLES / "myproject.wasm"),
            "--runtime",
            name,
        ],
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert f"${LIBRARIES[name]}=/nonexistent/lib.so" in lines[0] and "install" in lines[0]


def test_cli_runtimes_lists_all_three_and_the_missing_one_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed = json.loads(CliRunner().invoke(main, ["runtimes", "--format", "json"]).output)
    assert [i["name"] for i in listed] == list(runtimes.BACKENDS)
    assert {i["name"]: i["available"] for i in listed} == {
        n: n in AVAILABLE for n in runtimes.BACKENDS
    }
    monkeypatch.setenv("PWCLI_WASMEDGE_LIB", "/nonexistent/lib.so")
    listed = json.loads(CliRunner().invoke(main, ["runtimes", "--format", "json"]).output)
    wasmedge = next(i for i in listed if i["name"] == "wasmedge")
    assert wasmedge["available"] is False and "PWCLI_WASMEDGE_LIB" in wasmedge["detail"]


def test_the_conformance_suite_covers_every_example() -> None:
    assert sorted(w for w, _ in EXAMPLE_TRACES) == sorted(p.name for p in EXAMPLES.glob("*.wasm"))
    assert ROOT.is_dir()
