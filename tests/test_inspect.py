"""``pwcli inspect`` and ``pwcli runtimes``: exact output.

The expected texts live in tests/data/inspect/<case>.txt (table) and <case>.json (--format json).
After an intended change of the output, regenerate them and review the diff:

    PWCLI_UPDATE_EXPECTED=1 python -m pytest -q tests/test_inspect.py && git diff tests/data/inspect
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pwcli import runtimes
from pwcli.cli import main
from pwcli.host.imports import Imports
from pwcli.host.spec import HOST_FUNCTIONS, WASI_FUNCTIONS
from pwcli.host.wasi import Wasi
from pwcli.inspect import inspect_plugin
from pwcli.inspect_report import render_runtimes
from pwcli.plugin import load_plugin
from pwcli.report import make_console
from pwcli.runtimes.base import RuntimeInfo

from .conftest import EXAMPLES, wat_module

EXPECTED = Path(__file__).resolve().parent / "data" / "inspect"
UPDATE = os.environ.get("PWCLI_UPDATE_EXPECTED") == "1"

EXAMPLE_PLUGINS = sorted(p.name for p in EXAMPLES.glob("*.wasm"))

_CALLBACKS = (
    '(func (export "proxy_on_context_create") (param i32 i32))'
    '(func (export "proxy_on_done") (param i32) (result i32) i32.const 1)'
)
_HEADERS3 = (
    '(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) i32.const 0)'
)
_HEADERS2 = '(func (export "proxy_on_request_headers") (param i32 i32) (result i32) i32.const 0)'
_LOG = '(import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))'

# name -> (WAT body, abi marker suffix or None)
WAT_CASES: dict[str, tuple[str, str | None]] = {
    "no_marker": (_LOG + _CALLBACKS + _HEADERS3, None),
    "unknown_marker": (_LOG + _CALLBACKS + _HEADERS3, "0_3_0"),
    "vendor_marker": (
        _LOG + _CALLBACKS + _HEADERS3 + '(func (export "proxy_abi_mosn_version_0_2_0"))', None
    ),
    "bad_signature": (_LOG + _CALLBACKS + _HEADERS3, "0_1_0"),
    "unknown_env_import": (
        _LOG + '(import "env" "proxy_frobnicate" (func (param i32) (result i32)))' + _CALLBACKS,
        "0_2_1",
    ),
    "v010_import_in_021": (
        _LOG + '(import "env" "proxy_get_configuration" (func (param i32 i32) (result i32)))'
        + _CALLBACKS + _HEADERS3,
        "0_2_1",
    ),
    "wasi_unstable": (
        '(import "wasi_unstable" "fd_write" (func (param i32 i32 i32 i32) (result i32)))'
        '(import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))'
        + _LOG + _CALLBACKS + _HEADERS2
        + '(func (export "_start"))',
        "0_1_0",
    ),
}


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _check(name: str, actual: str) -> None:
    path = EXPECTED / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with PWCLI_UPDATE_EXPECTED=1 to create it"
    assert actual == path.read_text(encoding="utf-8")


def _wat_plugin(tmp_path: Path, case: str) -> Path:
    body, abi = WAT_CASES[case]
    path = tmp_path / f"{case}.wasm"
    path.write_bytes(wat_module(body, abi=abi))
    return path


def _plugin_path(tmp_path: Path, case: str) -> Path:
    if case in WAT_CASES:
        return _wat_plugin(tmp_path, case)
    return EXAMPLES / case


ALL_CASES = EXAMPLE_PLUGINS + list(WAT_CASES)


def test_every_example_is_covered() -> None:
    assert EXAMPLE_PLUGINS == [
        "as_body.wasm", "as_deny.wasm", "as_headers.wasm", "as_httpcall.wasm", "c_abi010.wasm",
        "go_wasip1.wasm", "myproject.wasm", "rust_tcp.wasm",
    ]


@pytest.mark.parametrize("case", ALL_CASES)
def test_inspect_table(tmp_path: Path, case: str) -> None:
    code, out, err = _invoke("inspect", str(_plugin_path(tmp_path, case)))
    assert (code, err) == (0, "")
    _check(f"{case.removesuffix('.wasm')}.txt", out)


@pytest.mark.parametrize("case", ALL_CASES)
def test_inspect_json(tmp_path: Path, case: str) -> None:
    code, out, err = _invoke("inspect", str(_plugin_path(tmp_path, case)), "--format", "json")
    assert (code, err) == (0, "")
    _check(f"{case.removesuffix('.wasm')}.json", out)
    assert json.loads(out)["file"] == Path(case).with_suffix(".wasm").name


@pytest.mark.parametrize("case", ALL_CASES)
def test_verdict_is_what_replay_does(tmp_path: Path, case: str) -> None:
    """The reasons inspect lists agree with load_plugin, strict and --lenient."""
    path = _plugin_path(tmp_path, case)
    report = inspect_plugin(path)
    verdict = report["verdict"]

    def loads(**kw: object) -> bool:
        try:
            load_plugin(path, **kw)  # type: ignore[arg-type]
        except Exception:
            return False
        return True

    assert verdict["runs"] == loads() == (not verdict["reasons"])
    assert verdict["lenient"]["runs"] == loads(lenient=True) == all(
        r["lenient"] for r in verdict["reasons"]
    )
    refused_imports = [
        e for g in report["imports"].values() for e in g if e["status"] != "implemented"
    ]
    assert bool(refused_imports) == any(r["what"] == "import" for r in verdict["reasons"])


def test_verdicts_at_a_glance(tmp_path: Path) -> None:
    got = {}
    for case in ALL_CASES:
        v = inspect_plugin(_plugin_path(tmp_path, case))["verdict"]
        got[case] = (v["runs"], v["lenient"]["runs"], v["with_abi"])
    runs = (True, True, None)
    assert got == {
        **{name: runs for name in EXAMPLE_PLUGINS},
        "no_marker": (False, False, {"0.1.0": "runs with --lenient", "0.2.0": "runs",
                                     "0.2.1": "runs"}),
        "unknown_marker": (False, False, {"0.1.0": "runs with --lenient", "0.2.0": "runs",
                                          "0.2.1": "runs"}),
        "vendor_marker": (False, False, {"0.1.0": "runs with --lenient", "0.2.0": "runs",
                                         "0.2.1": "runs"}),
        "bad_signature": (False, True, None),
        "unknown_env_import": (False, True, None),
        "v010_import_in_021": (False, True, None),
        "wasi_unstable": runs,
    }


def test_every_abi_function_is_implemented() -> None:
    """inspect says "implemented" for every function in the spec tables: true of the host."""
    assert [n for n in HOST_FUNCTIONS if not callable(getattr(Imports, "_" + n, None))] == []
    assert [n for n in WASI_FUNCTIONS if not callable(getattr(Wasi, n, None))] == []


def _custom_section(name: str, payload: bytes) -> bytes:
    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    body = leb(len(name)) + name.encode() + payload
    return b"\0" + leb(len(body)) + body


def test_toolchain_from_producers_and_name_section(tmp_path: Path) -> None:
    def vec(*items: bytes) -> bytes:
        return bytes([len(items)]) + b"".join(items)

    def s(text: str) -> bytes:
        return bytes([len(text)]) + text.encode()

    producers = vec(
        s("language") + vec(s("C++") + s("")),
        s("processed-by") + vec(s("clang") + s("17.0.1"), s("wasm-opt") + s("116")),
        s("sdk") + vec(s("Emscripten") + s("3.1.44")),
    )
    wasm = wat_module("$my_filter " + _LOG + _CALLBACKS)
    path = tmp_path / "filter.wasm"
    path.write_bytes(wasm + _custom_section("producers", producers))
    assert inspect_plugin(path)["toolchain"] == {
        "producers": {
            "language": ["C++"],
            "processed-by": ["clang 17.0.1", "wasm-opt 116"],
            "sdk": ["Emscripten 3.1.44"],
        },
        "module_name": "my_filter",
        "function_names": 0,
        "custom_sections": [{"name": "name", "size": 32},
                            {"name": "producers", "size": len(producers)}],
        "hints": [],
    }


def test_names_are_never_markup(tmp_path: Path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(wat_module(
        '(import "[red]mod" "[bold]f" (func (param i32)))' + _CALLBACKS
        + '(func (export "[bold]x[/bold]"))'
    ))
    code, out, _ = _invoke("inspect", str(path))
    assert code == 0
    assert "│ other" in out and "[red]mod.[bold]f" in out
    assert "  [bold]x[/bold]  func void -> void" in out


def test_truncated_first_20_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cut.wasm").write_bytes((EXAMPLES / "myproject.wasm").read_bytes()[:20])
    assert _invoke("inspect", "cut.wasm") == (
        2, "", "cut.wasm: truncated wasm module (ends inside byte 20)\n"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file, not a WebAssembly module"),
        (bytes.fromhex("8f3a5c0e91d2b7446e0f1a2b3c4d5e6f"),
         "not a WebAssembly module (no \\0asm magic number)"),
        (b"\0asm", "truncated wasm module (4 bytes)"),
        (b"\0asm\x0d\x00\x01\x00",
         "a WebAssembly component, not a core module: proxy-wasm plugins are core modules "
         "(build for wasm32-wasip1 / wasm32-unknown-unknown)"),
        (b"\0asm\x02\x00\x00\x00", "unsupported wasm binary version 02000000"),
    ],
    ids=["empty", "random", "magic-only", "component", "version-2"],
)
def test_garbage_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes,
                       message: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.wasm").write_bytes(content)
    for fmt in ("table", "json"):
        assert _invoke("inspect", "bad.wasm", "--format", fmt) == (2, "", f"bad.wasm: {message}\n")


def test_missing_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("plugins").mkdir()
    assert _invoke("inspect", "nope.wasm") == (2, "", "nope.wasm: no such file\n")
    assert _invoke("inspect", "plugins") == (2, "", "plugins: is a directory, not a .wasm file\n")


def test_inspect_needs_a_plugin() -> None:
    code, _, err = _invoke("inspect")
    assert code == 2
    assert err.splitlines()[-1] == "Error: Missing argument 'PLUGIN'."


# -- pwcli runtimes -----------------------------------------------------------------------------
def test_runtimes_table_wasmtime_row() -> None:
    info = runtimes.describe("wasmtime")
    code, out, err = _invoke("runtimes")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "pwcli runtimes"
    width = max(len(n) for n in runtimes.BACKENDS)
    row = lines.index(f"{'wasmtime'.ljust(width)}  available, version {info.version}")
    assert lines[row + 1].split() == ["library", str(info.location)]
    for name in runtimes.BACKENDS:
        assert sum(line.startswith(name.ljust(width) + "  ") for line in lines) == 1


def test_runtimes_json() -> None:
    code, out, err = _invoke("runtimes", "--format", "json")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list(runtimes.BACKENDS)
    wasmtime = rows[0]
    assert wasmtime["available"] is True
    assert wasmtime["version"] == runtimes.describe("wasmtime").version
    assert Path(wasmtime["location"]).is_file()
    for r in rows:
        assert sorted(r) == ["available", "detail", "features", "location", "name", "version"]
        assert r["available"] or r["detail"]  # an unavailable runtime says why


def test_unknown_runtime_is_described_not_raised() -> None:
    info = runtimes.describe("nope")
    assert info == RuntimeInfo(
        name="nope", available=False,
        detail=f"unknown runtime 'nope' (known: {', '.join(runtimes.BACKENDS)})",
    )


def test_replay_refuses_an_unknown_runtime_name() -> None:
    code, _, err = _invoke("replay", "t.json", "--wasm", "x.wasm", "--runtime", "nope")
    assert code == 2
    assert "Invalid value for '--runtime': 'nope' is not one of" in err


def test_render_runtimes_exact(tmp_path: Path) -> None:
    infos = [
        RuntimeInfo("wasmtime", True, "50.0.1", "/lib/libwasmtime.so", "bundled with the wheel",
                    {"simd": True, "tail_call": False}),
        RuntimeInfo("wamr", False,
                    detail="libiwasm.so not found (looked in /usr/lib); pip install 'pwcli[wamr]'"),
        RuntimeInfo("wasmedge", True, None, None, "", {}),
    ]
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        render_runtimes(infos, make_console(file=fh))
    assert [line.rstrip() for line in out.read_text().splitlines()] == [
        "pwcli runtimes",
        "",
        "wasmtime  available, version 50.0.1",
        "  library   /lib/libwasmtime.so",
        "  features  simd (without tail_call)",
        "  notes     bundled with the wheel",
        "",
        "wamr      not available",
        "  notes     libiwasm.so not found (looked in /usr/lib); pip install 'pwcli[wamr]'",
        "",
        "wasmedge  available, version unknown",
    ]
