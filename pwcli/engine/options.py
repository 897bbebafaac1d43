"""What a replay is run with: ``ReplayOptions`` (the caller's choices) and ``Inputs`` (the plugin's
inputs once the options and the trace's ``plugin`` block are merged: options win)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import runtimes
from ..host.host import EPOCH_2024_NS, HostOptions
from ..host.properties import encode_value
from ..host.spec import LogLevel
from ..runtimes.base import Limits
from ..trace import Trace

NS_PER_MS = 1_000_000
LEVELS = {lvl.name.lower(): lvl for lvl in LogLevel}
LEVELS["warning"] = LogLevel.WARN


@dataclass
class ReplayOptions:
    runtime: str = runtimes.DEFAULT
    root_id: str | None = None
    vm_id: str = ""
    plugin_name: str | None = None
    configuration: bytes | None = None
    vm_configuration: bytes | None = None
    environment: dict[str, str] | None = None
    log_level: str | None = None
    seed: int = 0
    start_epoch_ns: int = EPOCH_2024_NS
    properties: dict[str, Any] = field(default_factory=dict)
    failure_policy: str = "closed"  # closed | open | reload
    fail_fast: bool = False
    drain_ms: float = 0
    limits: Limits = field(default_factory=Limits)
    cache: bool = True
    cache_dir: str | None = None
    runtime_options: dict[str, Any] = field(default_factory=dict)
    pace: Callable[[int, int], None] | None = None  # (packet index, virtual ns) -> waits
    loop: int = 1  # replay the packets this many times; each loop's connections are new ones
    # Present the headers Envoy adds before the plugin (framing, x-forwarded-proto, x-request-id,
    # x-envoy-upstream-service-time); False: the trace's headers untouched.
    envoy_headers: bool = True

    def runtime_kwargs(self) -> dict[str, Any]:
        kw = dict(self.runtime_options)
        if self.runtime == "wasmtime" and self.cache_dir is not None:
            kw["cache_dir"] = self.cache_dir
        return kw


@dataclass
class Inputs:
    """The plugin's inputs: the options' values, else the trace's ``plugin`` block's, else the
    defaults."""

    root_id: str
    configuration: bytes
    vm_configuration: bytes
    environment: dict[str, str]
    log_level: str

    @classmethod
    def resolve(cls, options: ReplayOptions, trace: Trace) -> Inputs:
        given = trace.plugin
        return cls(
            root_id=_pick(options.root_id, given and given.root_id, ""),
            configuration=_pick(options.configuration, given and _b(given.configuration), b""),
            vm_configuration=_pick(options.vm_configuration, given and _b(given.vm_configuration),
                                   b""),
            environment=_pick(options.environment, given and given.environment, {}),
            log_level=_pick(options.log_level, given and given.log_level, "info"),
        )


def host_options(inputs: Inputs, options: ReplayOptions, trace: Trace) -> HostOptions:
    """One VM's host settings: inputs, properties (the options' override the trace's), upstreams."""
    props = {tuple(k.split(".")): v for k, v in (trace.properties or {}).items()}
    props.update({tuple(k.split(".")): v for k, v in options.properties.items()})
    ups: dict[str, list[Any]] = {}
    for name, resp in (trace.upstreams or {}).items():
        ups[name] = list(resp) if isinstance(resp, list) else [resp]
    return HostOptions(
        root_id=inputs.root_id,
        vm_id=options.vm_id,
        plugin_name=options.plugin_name,
        configuration=inputs.configuration,
        vm_configuration=inputs.vm_configuration,
        environment=dict(inputs.environment),
        log_level=LEVELS[inputs.log_level],
        seed=options.seed,
        start_epoch_ns=options.start_epoch_ns,
        properties={k: encode_value(v) for k, v in props.items()},
        upstreams=ups,
    )


def effective_properties(trace: dict[str, Any] | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The properties the trace sets, with the command line's overrides, sorted by path."""
    return dict(sorted({**(trace or {}), **overrides}.items()))


def _pick(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _b(text: str | None) -> bytes | None:
    return None if text is None else text.encode()
