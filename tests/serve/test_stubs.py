"""The committed stubs are what ``python -m pwcli.serve.regenerate`` writes from the .proto."""

from __future__ import annotations

from pathlib import Path

from pwcli.serve.regenerate import HERE, generate


def test_the_committed_stubs_are_current(tmp_path: Path) -> None:
    generate(tmp_path)
    for name in ("proxy_wasm_cli_pb2.py", "proxy_wasm_cli_pb2_grpc.py"):
        assert (tmp_path / name).read_text() == (HERE / name).read_text(), name
