"""``LiveProxy``: real Envoy with the plugin between a listener and a real upstream, with pwcli's
recorder in front of Envoy and behind it.

    client -> front relay (--listen) -> [PROXY protocol] Envoy + plugin -> relay -> upstream
                                                              \\-> relay per --cluster -> cluster

Why a recorder of pwcli's own rather than Envoy's tap filter: the recording must hold the traffic
as it arrived, with each connection's 5-tuple and each message's timing as its bytes came, and the
upstream's answer before the plugin touched it; the relays see exactly that (a tap sees one point
of the filter chain, without the connection's timing), and the same relays turn each cluster's
answers into the trace's ``upstreams``. The front relay opens each connection to Envoy with a
PROXY protocol line, so Envoy and the plugin see the real client and listener addresses.

``reload()`` (``--watch``) starts a new Envoy with the rebuilt plugin and points the front relay at
it once it is ready; the old one stops. The listener the client talks to stays up throughout, so
clients see no restart; Envoy's hot restart is not used (it needs a restarter wrapper and shared
memory between the two processes, for no gain here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..envoy import config as envoy_config
from ..envoy.driver import wasm_logs
from ..envoy.process import EnvoyProcess
from ..errors import cannot_listen
from .relay import Address, Relay
from .streams import LiveStream, LiveStreams

LOOPBACK = "127.0.0.1"


class LiveProxy:
    """Start with ``LiveProxy(...)`` (raises InputError for a port in use, EnvoyRefused when Envoy
    will not load the plugin); ``close()`` stops Envoy and every relay."""

    def __init__(self, setup: envoy_config.PluginSetup, upstream: Address, *,
                 listen: Address = (LOOPBACK, 8080), clusters: dict[str, Address] | None = None,
                 log_level: str = "info", on_stream: Callable[[LiveStream], None] | None = None,
                 note: Callable[[str], None] | None = None) -> None:
        self.setup = setup
        self.log_level = log_level
        self.note = note or (lambda line: None)
        self.streams = LiveStreams(on_stream or (lambda s: None), self.note)
        self.relays: list[Relay] = []
        self.envoy: EnvoyProcess | None = None
        self.log_seen = 0
        try:
            self.front = self._relay(listen, (LOOPBACK, 9), self.streams.front, proxy=True)
            self.upstream = self._relay((LOOPBACK, 0), upstream, self.streams.upstream)
            self.clusters = {name: self._relay((LOOPBACK, 0), addr,
                                               self.streams.cluster_tap(name, self.note))
                             for name, addr in (clusters or {}).items()}
            self.envoy = self._start(setup)
            self.front.retarget((LOOPBACK, self.envoy.listener_port))
        except BaseException:
            self.close()
            raise

    @property
    def address(self) -> Address:
        """Where clients connect."""
        return self.front.address

    def _relay(self, listen: Address, target: Address, tap: Any, *, proxy: bool = False) -> Relay:
        try:
            relay = Relay(listen, target, tap, proxy_protocol=proxy)
        except OSError as exc:
            raise cannot_listen(*listen, exc) from None
        self.relays.append(relay)
        return relay

    def _start(self, setup: envoy_config.PluginSetup) -> EnvoyProcess:
        cfg = envoy_config.build(setup, self.upstream.address[1],
                                 {n: r.address[1] for n, r in self.clusters.items()})
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        hcm["typed_config"]["always_set_request_id_in_response"] = True  # pairs the relays' views
        hcm["typed_config"]["server_header_transformation"] = "PASS_THROUGH"
        envoy = EnvoyProcess(cfg, log_level=self.log_level)
        try:
            envoy.start()
        except BaseException:
            envoy.stop()
            envoy.cleanup()
            raise
        return envoy

    def reload(self, wasm: Path | None = None) -> None:
        """A new Envoy with the plugin as it is now on disk; the old one stops once the new one
        is ready. If Envoy refuses the rebuilt plugin, EnvoyRefused and the old one keeps going."""
        setup = replace(self.setup, wasm=wasm) if wasm is not None else self.setup
        new = self._start(setup)
        old, self.envoy = self.envoy, new
        self.setup = setup
        self.log_seen = 0
        self.front.retarget((LOOPBACK, new.listener_port))
        if old is not None:
            old.stop()
            old.cleanup()

    def new_logs(self) -> list[tuple[str, str]]:
        """The plugin's log lines Envoy wrote since the last call: (level, message)."""
        if self.envoy is None:
            return []
        lines = self.envoy.log_lines()
        fresh, self.log_seen = lines[self.log_seen:], len(lines)
        return wasm_logs(fresh)

    def recording(self) -> dict[str, Any]:
        plugin = {k: v for k, v in (("root_id", self.setup.root_id),
                                    ("configuration", self.setup.configuration),
                                    ("vm_configuration", self.setup.vm_configuration)) if v}
        if self.setup.environment:
            plugin["environment"] = dict(self.setup.environment)
        return self.streams.recording(plugin)

    def close(self) -> None:
        for relay in self.relays:
            relay.stop()
        if self.envoy is not None:
            self.envoy.stop()
            self.envoy.cleanup()
            self.envoy = None

    def __enter__(self) -> LiveProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
