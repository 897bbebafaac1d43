"""The Envoy configuration pwcli writes for a comparison: one listener on loopback (the PROXY
protocol listener filter lets Envoy see the trace's client and server addresses), the plugin as an
HTTP filter in front of the router, a cluster for the mock upstream and one per trace ``upstreams``
entry, the admin endpoint on loopback. Every port is ephemeral.

The configuration is JSON (valid YAML, which Envoy reads); fields follow Envoy's v3 API:
``envoy.extensions.filters.http.wasm.v3.Wasm`` and ``envoy.extensions.wasm.v3.PluginConfig``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3." \
      "HttpConnectionManager"


@dataclass
class PluginSetup:
    """What Envoy needs of the plugin: the same inputs pwcli's replay gets."""

    wasm: Path
    root_id: str
    vm_id: str
    plugin_name: str
    configuration: str
    vm_configuration: str
    environment: dict[str, str]


def _plugin_config(p: PluginSetup) -> dict[str, Any]:
    vm: dict[str, Any] = {
        "vm_id": p.vm_id,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(p.wasm)}},
    }
    if p.vm_configuration:
        vm["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                               "value": p.vm_configuration}
    if p.environment:
        vm["environment_variables"] = {"key_values": dict(p.environment)}
    config: dict[str, Any] = {"name": p.plugin_name, "root_id": p.root_id, "vm_config": vm,
                              "fail_open": False}
    if p.configuration:
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                   "value": p.configuration}
    return config


def _cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": LOOPBACK,
                                                          "port_value": port}}}}]}]},
    }


def _listener(name: str, filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "stat_prefix": name,  # listener.<name>.*: both listeners bind port 0
        "address": {"socket_address": {"address": LOOPBACK, "port_value": 0}},
        "listener_filters": [{
            "name": "envoy.filters.listener.proxy_protocol",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters."
                                      "listener.proxy_protocol.v3.ProxyProtocol"}}],
        "filter_chains": [{"filters": filters}],
    }


def _tcp_filters(wasm_config: dict[str, Any]) -> list[dict[str, Any]]:
    """The plugin as a network filter in front of tcp_proxy (the trace's TCP connections)."""
    return [
        {"name": "envoy.filters.network.wasm", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
            "config": wasm_config}},
        {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "pwcli_tcp", "cluster": "pwcli_tcp_upstream"}},
    ]


def build(plugin: PluginSetup, upstream_port: int, clusters: dict[str, int],
          tcp_upstream_port: int | None = None) -> dict[str, Any]:
    """The bootstrap configuration; ``clusters`` maps each trace upstream to its mock's port.
    With ``tcp_upstream_port``, a second listener (``pwcli_tcp``) runs the plugin as a network
    filter for the trace's TCP connections."""
    wasm_config = _plugin_config(plugin)
    filters = [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM,
        "stat_prefix": "pwcli",
        "codec_type": "HTTP1",
        "route_config": {"virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"},
                        "route": {"cluster": "pwcli_upstream"}}]}]},
        "http_filters": [
            {"name": "envoy.filters.http.wasm", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": wasm_config}},
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3."
                         "Router"}},
        ],
    }}]
    return {
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": 0}}},
        "static_resources": {
            "listeners": [_listener("pwcli", filters)] + (
                [_listener("pwcli_tcp", _tcp_filters(wasm_config))] if tcp_upstream_port else []),
            "clusters": [_cluster("pwcli_upstream", upstream_port)]
            + ([_cluster("pwcli_tcp_upstream", tcp_upstream_port)] if tcp_upstream_port else [])
            + [_cluster(name, port) for name, port in sorted(clusters.items())],
        },
    }


def write(config: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(config, indent=1))
    return path
