"""The compiled hot path and the pure-Python path: both there, and the same reports from both.

The suite itself runs both ways in CI (``.ci/run`` runs it again with PWCLI_PURE=1); this file
checks that the compiled parts are really loaded where they were built, that PWCLI_PURE really
turns them off, and that the two paths write byte-identical reports for every example, a trapping
guest, a host function's own failure, a bad pointer and an exhausted budget.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pwcli import native

from .conftest import EXAMPLES, SEED_PACKETS, TRACES, wat_module, write_wasm

EXAMPLE_PAIRS = [
    ("http_4pkts.json", "myproject.wasm"), ("as_body.json", "as_body.wasm"),
    ("as_deny.json", "as_deny.wasm"), ("as_headers.json", "as_headers.wasm"),
    ("as_httpcall.json", "as_httpcall.wasm"), ("c_abi010_tick.json", "c_abi010.wasm"),
    ("go_headers.json", "go_wasip1.wasm"), ("rust_tcp.json", "rust_tcp.wasm"),
]

# Guests that end badly in three different ways, in proxy_on_request_headers.
_HEADERS = '(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {})'
_CONTEXT = '(func (export "proxy_on_context_create") (param i32 i32))'
FAULTY = {
    "unreachable": _CONTEXT + _HEADERS.format("unreachable"),
    "host_exit": '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
                 + _CONTEXT + _HEADERS.format("i32.const 3 call $exit i32.const 0"),
    "budget": _CONTEXT + _HEADERS.format("(loop $l br $l) i32.const 0"),
    "bad_pointer": '(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))'
                   + _CONTEXT + _HEADERS.format("i32.const 2 i32.const -16 i32.const 64 call $log"),
}


def _has_compiler() -> bool:
    return any(shutil.which(cc) for cc in ("cc", "gcc", "clang"))


def _report(args: list[str], *, pure: bool) -> bytes:
    env = {**os.environ, "PWCLI_PURE": "1" if pure else "0"}
    res = subprocess.run([sys.executable, "-m", "pwcli", "replay", *args, "--format", "json"],
                         capture_output=True, env=env, timeout=120)
    assert res.returncode in (0, 1), res.stderr.decode()
    return res.stdout


@pytest.mark.skipif(native.PURE, reason="PWCLI_PURE is set: the pure path is under test")
def test_the_compiled_parts_are_loaded_where_a_compiler_built_them() -> None:
    if not _has_compiler():
        pytest.skip("no C compiler: pwcli was installed pure")
    import pwcli.engine.http
    import pwcli.host.host
    from pwcli.runtimes import wasmtime_crossing

    assert native.module("pwcli.runtimes._crossing") is not None
    assert wasmtime_crossing.crossing_class().__module__ == "pwcli.runtimes._crossing"
    assert {"pwcli.host.host", "pwcli.host.imports", "pwcli.engine.http"} <= set(native.compiled())
    assert native.describe().startswith("compiled hot path (C crossing; host and engine")
    del pwcli


def test_pwcli_pure_runs_the_python_files() -> None:
    code = ("import pwcli, pwcli.host.host as h; from pwcli import native; "
            "from pwcli.runtimes.wasmtime_crossing import crossing_class; "
            "print(h.__file__.endswith('.py'), native.compiled(), crossing_class().__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PWCLI_PURE": "1"}).stdout.split(None, 1)
    assert out[0] == "True"
    assert out[1].strip() == "[] CtypesCrossing"


@pytest.mark.parametrize(("trace", "wasm"), EXAMPLE_PAIRS)
def test_both_paths_write_the_same_report(trace: str, wasm: str) -> None:
    args = [str(TRACES / trace), "--wasm", str(EXAMPLES / wasm)]
    compiled, pure = _report(args, pure=False), _report(args, pure=True)
    assert compiled == pure
    assert json.loads(pure)["summary"]["exit_status"] == 0


@pytest.mark.parametrize("kind", sorted(FAULTY))
def test_both_paths_report_a_faulty_plugin_the_same(tmp_path: Path, kind: str) -> None:
    wasm = write_wasm(tmp_path, wat_module(FAULTY[kind]))
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps(SEED_PACKETS))
    args = [str(trace), "--wasm", str(wasm), "--budget", "100000"]
    compiled, pure = _report(args, pure=False), _report(args, pure=True)
    assert compiled == pure
    report = json.loads(pure)
    (stream,) = report["streams"]
    if kind == "bad_pointer":  # the plugin got INVALID_MEMORY_ACCESS and went on
        assert stream["failure"] is None
        (call,) = [e for e in stream["events"] if e["name"] == "proxy_log"]
        assert call["result"] == "INVALID_MEMORY_ACCESS"
    else:
        kinds = {"unreachable": "unreachable", "host_exit": "proc_exit", "budget": "timeout"}
        assert stream["failure"]["kind"] == kinds[kind]
        assert stream["failure"]["callback"] == "proxy_on_request_headers"
