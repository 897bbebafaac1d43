"""Shared fixtures: WAT guests compiled with wasmtime.wat2wasm, replays on every available runtime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from pwcli import runtimes
from pwcli.plugin import load_plugin
from pwcli.engine import ReplayOptions, Run, replay
from pwcli.trace import parse_trace

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "example"
TRACES = ROOT / "traces"

AVAILABLE = [name for name in runtimes.BACKENDS if runtimes.describe(name).available]


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never touch the user's module cache."""
    os.environ["PWCLI_CACHE_DIR"] = str(tmp_path_factory.mktemp("module-cache"))


@pytest.fixture(params=AVAILABLE)
def runtime(request: pytest.FixtureRequest) -> str:
    """Every runtime available here (the others are reported as skipped by test_runtimes)."""
    return str(request.param)


def wat_module(
    body: str, *, abi: str | None = "0_2_1", memory: bool = True, alloc: bool = True
) -> bytes:
    """A guest: ``body`` (imports, funcs, exports) plus the ABI marker, a memory and a bump allocator
    exported as ``malloc`` that hands out memory from 0x10000 upward. ``abi=None``: no marker."""
    parts = ["(module", body]
    if memory:
        parts.append('(memory (export "memory") 2)')
    if alloc:
        parts.append(
            '(global $heap (mut i32) (i32.const 0x10000))'
            '(func (export "malloc") (param $n i32) (result i32) (local $p i32)'
            " global.get $heap local.set $p"
            " global.get $heap local.get $n i32.add global.set $heap local.get $p)"
        )
    if abi is not None:
        parts.append(f'(func (export "proxy_abi_version_{abi}"))')
    parts.append(")")
    return wasmtime.wat2wasm("\n".join(parts))


def write_wasm(tmp_path: Path, wasm: bytes, name: str = "guest.wasm") -> Path:
    path = tmp_path / name
    path.write_bytes(wasm)
    return path


SEED_PACKETS: list[dict[str, Any]] = [
    {"sip": "10.0.0.2", "sp": 50124, "dip": "10.0.0.1", "dp": 443, "scheme": "https",
     "uri_path": "/p", "method": "GET", "headers": {"h1": "v1", "User-Agent": "ua/1"},
     "forward_direction": True},
    {"sip": "10.0.0.1", "sp": 443, "dip": "10.0.0.2", "dp": 50124, "headers": {"rh1": "rv1"},
     "forward_direction": False, "delta_ms": 5, "body": "Hello World!"},
]


def run_guest(
    tmp_path: Path,
    wasm: bytes,
    packets: list[dict[str, Any]] | dict[str, Any] | None = None,
    *,
    runtime: str = "wasmtime",
    lenient: bool = False,
    abi: str | None = None,
    **options: Any,
) -> Run:
    """Replay ``packets`` (default: one request and its response) through a wasm guest."""
    path = write_wasm(tmp_path, wasm)
    trace = parse_trace(SEED_PACKETS if packets is None else packets, source="test.json")
    plugin = load_plugin(path, lenient=lenient, abi=abi)
    return replay(plugin, trace, ReplayOptions(runtime=runtime, **options))


def hostcalls(run: Run, name: str) -> list[Any]:
    return [e for e in run.events if e.kind == "hostcall" and e.name == name]


def logs(run: Run) -> list[tuple[str, str]]:
    return [(e.name, e.args["message"]) for e in run.events if e.kind == "log"]
