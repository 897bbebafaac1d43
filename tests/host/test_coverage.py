"""Every proxy-wasm host function and WASI function pwcli provides is called by a WAT guest here."""

from __future__ import annotations

import re
from pathlib import Path

from pwcli.host.spec import HOST_FUNCTIONS, WASI_FUNCTIONS

HERE = Path(__file__).parent


def test_every_host_function_has_a_wat_guest_test() -> None:
    text = "\n".join(p.read_text() for p in HERE.glob("test_*.py") if p.name != Path(__file__).name)
    # As an import in WAT ($name), in the WASI stub table ("name", ...) or a helper's fn="name".
    called = set(re.findall(r"\$([a-z_][a-z0-9_]*)", text))
    called |= set(re.findall(r'"([a-z_][a-z0-9_]*)"', text))
    missing = sorted((set(HOST_FUNCTIONS) | set(WASI_FUNCTIONS)) - called)
    assert missing == []
