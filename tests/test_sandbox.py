"""The sandbox: a plugin that tries to open a file, read the host environment or stdin, or reach the
network gets nothing. No WASI preopened directories, an empty environment unless ``--env KEY=VALUE``,
no sockets; outbound calls are only ever answered from the trace.
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.plugin import load_plugin
from pwcli.engine import ReplayOptions, Session
from pwcli.report import to_json
from pwcli.trace import parse_trace

from .conftest import wat_module, write_wasm
from .hostile import streams

WASI = "wasi_snapshot_preview1"

SNOOP = f"""
 (import "{WASI}" "path_open"
   (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "{WASI}" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
 (import "{WASI}" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
 (import "{WASI}" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
 (import "{WASI}" "environ_get" (func $env_get (param i32 i32) (result i32)))
 (import "{WASI}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (import "{WASI}" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
 (import "{WASI}" "sock_recv" (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
 (import "{WASI}" "sock_send" (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))
 (import "{WASI}" "sock_shutdown" (func $sock_shutdown (param i32 i32) (result i32)))
 (import "env" "proxy_http_call"
   (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
 ;; 0x100.. results (u32 each), 0x400 path, 0x800 environ pointers, 0x1000 environ strings,
 ;; 0x2000 a read buffer (pre-filled with 'Z'), 0x3000 iovecs, 0x3800 http-call headers
 (data (i32.const 0x400) "/etc/passwd")
 (data (i32.const 0x500) "upstream")
 (data (i32.const 0x3800) "\\03\\00\\00\\00\\07\\00\\00\\00\\03\\00\\00\\00\\05\\00\\00\\00\\01\\00\\00\\00"
   "\\0a\\00\\00\\00\\04\\00\\00\\00:method\\00GET\\00:path\\00/\\00:authority\\00host\\00")
 (func $result (param $i i32) (param $v i32)
   (i32.store (i32.add (i32.const 0x100) (i32.shl (local.get $i) (i32.const 2))) (local.get $v)))
 (func $snoop (export "snoop")
   (memory.fill (i32.const 0x2000) (i32.const 0x5A) (i32.const 64))
   (i32.store (i32.const 0x3000) (i32.const 0x2000))
   (i32.store (i32.const 0x3004) (i32.const 64))
   ;; 0: open /etc/passwd under fd 3 (a guessed preopen) and under fd 0
   (call $result (i32.const 0) (call $path_open (i32.const 3) (i32.const 0) (i32.const 0x400)
     (i32.const 11) (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 0x180)))
   (call $result (i32.const 1) (call $path_open (i32.const 0) (i32.const 0) (i32.const 0x400)
     (i32.const 11) (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 0x180)))
   ;; 2-3: is there any preopened directory?
   (call $result (i32.const 2) (call $prestat (i32.const 3) (i32.const 0x190)))
   (call $result (i32.const 3) (call $prestat (i32.const 4) (i32.const 0x190)))
   ;; 4: read stdin into the buffer (count at 0x1a0)
   (call $result (i32.const 4) (call $fd_read (i32.const 0) (i32.const 0x3000) (i32.const 1)
                                               (i32.const 0x1a0)))
   ;; 5: the environment: count at 0x1b0, bytes at 0x1b4
   (call $result (i32.const 5) (call $env_sizes (i32.const 0x1b0) (i32.const 0x1b4)))
   (call $result (i32.const 6) (call $env_get (i32.const 0x800) (i32.const 0x1000)))
   (i32.store (i32.const 0x3010) (i32.const 0x1000))
   (i32.store (i32.const 0x3014) (i32.load (i32.const 0x1b4)))
   (drop (call $fd_write (i32.const 1) (i32.const 0x3010) (i32.const 1) (i32.const 0x1c0)))
   ;; 7-10: sockets (fd 3, out-params pre-set to 0x77 so zeroing shows)
   (i32.store (i32.const 0x1d0) (i32.const 0x77))
   (i32.store (i32.const 0x1d4) (i32.const 0x77))
   (i32.store (i32.const 0x1d8) (i32.const 0x77))
   (call $result (i32.const 7) (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 0x1d0)))
   (call $result (i32.const 8) (call $sock_recv (i32.const 3) (i32.const 0x3000) (i32.const 1)
                                                (i32.const 0) (i32.const 0x1d4) (i32.const 0x1d8)))
   (call $result (i32.const 9) (call $sock_send (i32.const 3) (i32.const 0x3000) (i32.const 1)
                                                (i32.const 0) (i32.const 0x1dc)))
   (call $result (i32.const 10) (call $sock_shutdown (i32.const 3) (i32.const 2)))
   ;; 11: an http call to a cluster the trace does not declare
   (call $result (i32.const 11) (call $http_call (i32.const 0x500) (i32.const 8)
     (i32.const 0x3800) (i32.const 64) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
     (i32.const 1000) (i32.const 0x1e0))))
 (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) call $snoop i32.const 0)
"""

# errno / status the plugin gets for each attempt, in the order of $result's index
EXPECTED = {
    "path_open(fd 3)": 44, "path_open(fd 0)": 44,  # ENOENT: nothing to open
    "fd_prestat_get(3)": 8, "fd_prestat_get(4)": 8,  # EBADF: no preopened directory
    "fd_read(stdin)": 52,  # ENOSYS: stdin is not the plugin's
    "environ_sizes_get": 0, "environ_get": 0,
    "sock_accept": 58, "sock_recv": 58, "sock_send": 58, "sock_shutdown": 58,  # ENOTSUP
    "proxy_http_call(undeclared upstream)": 2,  # BAD_ARGUMENT: unknown cluster
}


@pytest.fixture
def snoop(tmp_path: Path) -> Path:
    return write_wasm(tmp_path, wat_module(SNOOP), "snoop.wasm")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any socket pwcli would open during a test fails it."""
    opened: list[Any] = []

    def refuse(*args: Any, **kw: Any) -> None:
        opened.append(args)
        raise AssertionError("pwcli opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return opened


def _snoop(wasm: Path, **options: Any) -> tuple[Any, dict[str, int], Any]:
    trace = parse_trace(streams(1, armed=-1), source="sandbox.json")
    session = Session(load_plugin(wasm), ReplayOptions(**options), trace, checked=True)
    session.feed(trace.packets)
    run = session.close()
    mem = session.instance.memory
    got = dict(zip(EXPECTED, struct.unpack("<12I", mem.read(0x100, 48)), strict=True))
    return run, got, mem


def test_a_plugin_gets_nothing_from_files_stdin_sockets_or_the_network(
    snoop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PWCLI_SANDBOX_SECRET", "do-not-leak")
    run, got, mem = _snoop(snoop)
    assert got == EXPECTED
    assert mem.read(0x180, 4) == b"\0\0\0\0"  # no file descriptor was handed out
    assert mem.read(0x1a0, 4) == b"\0\0\0\0" and mem.read(0x2000, 64) == b"Z" * 64  # no byte read
    assert struct.unpack("<II", mem.read(0x1b0, 8)) == (0, 0)  # empty environment
    assert struct.unpack("<IIII", mem.read(0x1d0, 16)) == (0, 0, 0, 0)  # socket out-params zeroed
    assert run.exit_code == 0
    calls = {(e.name, json.dumps(e.args, sort_keys=True)): e.result
             for e in run.events if e.kind == "hostcall"}
    assert calls[("path_open", '{"path": "/etc/passwd"}')] == "NOENT"
    assert calls[("environ_sizes_get", "{}")] == {"errno": "SUCCESS", "value": 0}
    assert "do-not-leak" not in json.dumps(to_json(run))


def test_a_real_file_next_to_the_plugin_cannot_be_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    guest = SNOOP.replace('"/etc/passwd"', f'"{secret}"').replace(
        "(i32.const 11)", f"(i32.const {len(str(secret))})")
    run, got, mem = _snoop(write_wasm(tmp_path, wat_module(guest)))
    assert got["path_open(fd 3)"] == got["path_open(fd 0)"] == 44
    assert mem.read(0x2000, 64) == b"Z" * 64
    assert "top secret" not in json.dumps(to_json(run))


def test_the_environment_is_only_what_env_gives(snoop: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PWCLI_SANDBOX_SECRET", "do-not-leak")
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(streams(1, armed=-1)))
    runner = CliRunner()
    bare = runner.invoke(main, ["replay", str(trace), "--wasm", str(snoop), "--format", "json"])
    assert bare.exit_code == 0, bare.output
    assert "do-not-leak" not in bare.output and "PWCLI_SANDBOX_SECRET" not in bare.output
    report = json.loads(bare.output)
    assert report["inputs"]["environment"] == {}
    assert report["streams"][0]["logs"] == []
    given = runner.invoke(main, ["replay", str(trace), "--wasm", str(snoop), "--format", "json",
                                 "--env", "MODE=test", "--env", "EMPTY="])
    assert given.exit_code == 0, given.output
    report = json.loads(given.output)
    assert report["inputs"]["environment"] == {"EMPTY": "", "MODE": "test"}
    sizes = [e for e in report["streams"][0]["events"] if e["name"] == "environ_sizes_get"]
    assert sizes[0]["result"] == {"errno": "SUCCESS", "value": 2}
    assert report["streams"][0]["logs"] == [
        {"t_ms": 1, "level": "info", "message": "MODE=test\u0000EMPTY=\u0000"}
    ]
    assert "do-not-leak" not in given.output


def test_stdin_is_never_read(snoop: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps(streams(1, armed=-1)))
    result = CliRunner().invoke(main, ["replay", str(trace), "--wasm", str(snoop), "--format",
                                       "json"], input="stdin-secret\n")
    assert result.exit_code == 0
    assert "stdin-secret" not in result.output
    reads = [e for e in json.loads(result.output)["streams"][0]["events"]
             if e["name"] == "fd_read"]
    assert reads == [{"t_ms": 1, "ctx": 2, "kind": "hostcall", "name": "fd_read",
                      "args": {"fd": 0}, "result": "NOSYS"}]


def test_outbound_calls_are_answered_only_from_the_trace(snoop: Path,
                                                         _no_network: list[Any]) -> None:
    run, got, mem = _snoop(snoop)
    assert got["proxy_http_call(undeclared upstream)"] == 2
    assert _no_network == []  # and no socket was ever opened
    # declared in the trace: answered from it, still without a socket
    trace = parse_trace({"packets": streams(1, armed=-1),
                         "upstreams": {"upstream": {"status": 200, "body": "from the trace"}}},
                        source="sandbox.json")
    session = Session(load_plugin(snoop), ReplayOptions(), trace, checked=True)
    session.feed(trace.packets)
    run = session.close()
    (status,) = struct.unpack("<I", session.instance.memory.read(0x100 + 4 * 11, 4))
    assert status == 0
    calls = [e for e in run.events if e.name == "proxy_http_call"]
    assert calls[0].result == {"status": "OK", "value": 1}
    assert _no_network == []
