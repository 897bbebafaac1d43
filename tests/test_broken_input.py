"""Broken input: every file of tests/data/broken/ gives its exact one-line message (its sidecar
``.expected`` file), exit status 2 and no traceback.

Traces (``*.json``) are replayed with a good plugin, plugins (``*.wasm``) with a good trace
(``ok_trace.json``). Cases that cannot live in git (a missing file, an unreadable one, a sparse
file over the size cap) are made here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pwcli.cli import main

from .conftest import EXAMPLES

BROKEN = Path(__file__).resolve().parent / "data" / "broken"
GOOD_PLUGIN = EXAMPLES / "myproject.wasm"
GOOD_TRACE = "ok_trace.json"
TRACES = sorted(p.name for p in BROKEN.glob("*.json") if p.name != GOOD_TRACE)
PLUGINS = sorted(p.name for p in BROKEN.glob("*.wasm"))


def _pwcli(*args: str) -> Result:
    result = CliRunner().invoke(main, ["replay", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"pwcli raised {result.exception!r}"
    )
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    return result


def _expected(name: str) -> str:
    return (BROKEN / f"{name}.expected").read_text()


@pytest.fixture(autouse=True)
def _in_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)  # messages name the file as given: relative, so stable


def test_the_corpus_is_complete() -> None:
    names = {p.name for p in BROKEN.iterdir() if p.suffix in (".json", ".wasm")}
    expected = {p.name.removesuffix(".expected") for p in BROKEN.glob("*.expected")}
    assert names - {GOOD_TRACE} == expected
    assert len(TRACES) >= 40 and len(PLUGINS) >= 10


@pytest.mark.parametrize("name", TRACES)
def test_broken_trace(name: str) -> None:
    result = _pwcli(name, "--wasm", str(GOOD_PLUGIN))
    assert result.exit_code == 2
    assert result.stderr == _expected(name)
    assert result.stdout == ""


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl"])
@pytest.mark.parametrize("name", PLUGINS)
def test_broken_plugin(name: str, fmt: str) -> None:
    result = _pwcli(GOOD_TRACE, "--wasm", name, "--format", fmt)
    assert result.exit_code == 2
    assert result.stderr == _expected(name)
    assert result.stdout == ""


def test_the_good_pair_runs() -> None:
    result = _pwcli(GOOD_TRACE, "--wasm", str(GOOD_PLUGIN))
    assert result.exit_code == 0


# -- cases made at test time ------------------------------------------------------------------
def test_missing_files() -> None:
    result = _pwcli(GOOD_TRACE, "--wasm", "missing.wasm")
    assert (result.exit_code, result.stderr) == (2, "missing.wasm: no such file\n")
    result = _pwcli("missing.json", "--wasm", str(GOOD_PLUGIN))
    assert (result.exit_code, result.stderr) == (2, "missing.json: no such file\n")


def test_a_directory_as_the_trace() -> None:
    result = _pwcli("directory.wasm", "--wasm", str(GOOD_PLUGIN))
    assert result.exit_code == 2  # click's usage error for the TRACE argument
    assert result.stderr.endswith("Error: Invalid value for '[TRACE]': File 'directory.wasm' is a "
                                  "directory.\n")


def test_unreadable_files(tmp_path: Path) -> None:
    """chmod 000. Root (CI containers) reads it anyway: then the content decides the message."""
    plugin = tmp_path / "locked.wasm"
    plugin.write_bytes(b"locked away\n")
    trace = tmp_path / "locked.json"
    trace.write_text("[]")
    plugin.chmod(0)
    trace.chmod(0)
    try:
        readable = os.access(plugin, os.R_OK)
        result = _pwcli(str(trace), "--wasm", str(GOOD_PLUGIN))
        if readable:
            assert result.exit_code == 0  # an empty trace is a valid trace
        else:
            assert (result.exit_code, result.stderr) == (
                2, f"{trace}: cannot read: Permission denied\n")
        result = _pwcli(GOOD_TRACE, "--wasm", str(plugin))
        assert result.exit_code == 2
        if readable:
            assert result.stderr == f"{plugin}: not a WebAssembly module (no \\0asm magic number)\n"
        else:
            assert result.stderr == f"{plugin}: permission denied\n"
    finally:
        plugin.chmod(0o600)
        trace.chmod(0o600)


def test_a_plugin_over_the_size_cap(tmp_path: Path) -> None:
    from pwcli.plugin import MAX_PLUGIN_BYTES

    big = tmp_path / "big.wasm"
    with big.open("wb") as fh:
        fh.truncate(MAX_PLUGIN_BYTES + 1)  # sparse: costs no disk
    result = _pwcli(GOOD_TRACE, "--wasm", str(big))
    assert (result.exit_code, result.stderr) == (
        2, f"{big}: too large for a plugin (over {MAX_PLUGIN_BYTES} bytes)\n")


def test_an_oversized_body(tmp_path: Path) -> None:
    from pwcli.trace import MAX_TEXT

    trace = tmp_path / "huge.json"
    body = "x" * (MAX_TEXT + 1)
    trace.write_text('[{"sip": "10.0.0.2", "sp": 1, "dip": "10.0.0.1", "dp": 80, "method": "GET",'
                     f' "uri_path": "/", "forward_direction": true, "body": "{body}"}}]')
    del body
    result = _pwcli(str(trace), "--wasm", str(GOOD_PLUGIN))
    assert (result.exit_code, result.stderr) == (
        2, f"{trace}: packet 0: body: too large ({MAX_TEXT + 1} bytes, at most {MAX_TEXT})\n")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocess")
def test_a_real_process_prints_one_line_and_exits_2() -> None:
    """Outside CliRunner too: the installed entry point, its real stderr and exit status."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "pwcli", "replay", "deep_nesting.json", "--wasm", "truncated.wasm"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", _expected("deep_nesting.json"))
