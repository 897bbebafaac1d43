"""pwcli: run proxy-wasm plugins outside a proxy.

The public API, for scripts and tests::

    import pwcli

    run = pwcli.replay(pwcli.load_plugin("filter.wasm"), pwcli.load_trace("trace.json"))
    assert run.stream(0).response.header("x-wasm-custom") == "FOO"
    report = pwcli.to_json(run)            # the canonical JSON report (a dict)
    pwcli.check_golden("golden.json", report).ok

    with pwcli.Session("filter.wasm") as s:   # the same engine, fed one packet at a time
        r = s.http({"method": "GET", "uri_path": "/"}, {"status": 200})

Everything else (``pwcli.engine``'s modules, ``pwcli.host``, ``pwcli.runtimes``) is internal.
"""

from __future__ import annotations

from . import native  # noqa: F401 - first: under PWCLI_PURE it decides how the rest is loaded
from . import startup

with startup.own_models():  # the package's pydantic models are built by these imports
    from .engine import ReplayOptions, Run, Session, replay
    from .errors import (
        BackendError,
        GuestTrap,
        InputError,
        PluginLoadError,
        PwcliError,
        TraceError,
    )
    from .events import Event, StreamResult
    from .golden import check as check_golden
    from .plugin import Plugin, load_plugin
    from .report import to_json
    from .trace import Packet, Trace, load_trace, parse_trace


def __getattr__(name: str) -> str:
    """``__version__``, read from the package metadata when first asked (importlib.metadata is
    slow to import, and the CLI's start-up does not need it)."""
    if name != "__version__":
        raise AttributeError(f"module 'pwcli' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("pwcli")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = "0+unknown"
    globals()["__version__"] = version
    return version

__all__ = [
    "BackendError",
    "Event",
    "GuestTrap",
    "InputError",
    "Packet",
    "Plugin",
    "PluginLoadError",
    "PwcliError",
    "ReplayOptions",
    "Run",
    "Session",
    "StreamResult",
    "Trace",
    "TraceError",
    "__version__",
    "check_golden",
    "load_plugin",
    "load_trace",
    "parse_trace",
    "replay",
    "to_json",
]
