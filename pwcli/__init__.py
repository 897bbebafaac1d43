"""pwcli: run proxy-wasm plugins outside a proxy."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    BackendError,
    GuestTrap,
    InputError,
    PluginLoadError,
    PwcliError,
    TraceError,
)
from .plugin import Plugin, load_plugin
from .replay import ReplayOptions, Run, replay
from .trace import Packet, Trace, load_trace, parse_trace

try:
    __version__ = version("pwcli")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = [
    "BackendError",
    "GuestTrap",
    "InputError",
    "Packet",
    "Plugin",
    "PluginLoadError",
    "PwcliError",
    "ReplayOptions",
    "Run",
    "Trace",
    "TraceError",
    "__version__",
    "load_plugin",
    "load_trace",
    "parse_trace",
    "replay",
]
