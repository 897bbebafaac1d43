"""``pwcli proxy``: the command line of the live mode."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from ..cliargs import key_values, text_or_file
from ..errors import InputError, PwcliError
from ..filewatch import FileWatch
from ..textutil import hostport

POLL_SECONDS = 0.2  # how often Envoy's new log lines are shown and the plugin's file looked at


@click.command("proxy", context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@click.option("--wasm", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="The plugin (.wasm) Envoy runs.")
@click.option("--upstream", required=True, metavar="URL",
              help="Where Envoy sends the requests: http://HOST:PORT.")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Where clients connect (port 0: any free port; loopback unless told).")
@click.option("--cluster", "clusters", multiple=True, metavar="NAME=URL",
              help="Serve the plugin's http calls to cluster NAME from URL (repeatable).")
@click.option("--record", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="On exit, write a trace of the traffic that pwcli replay replays.")
@click.option("--watch", is_flag=True, help="Reload the plugin in Envoy when the file changes.")
@click.option("--root-id", default="", help="The plugin's root id.")
@click.option("--vm-id", default="", help="The VM id.")
@click.option("--plugin-name", default=None, help="The plugin's name (default: the root id).")
@click.option("--config", "config", metavar="TEXT|@FILE", help="Plugin configuration.")
@click.option("--vm-config", metavar="TEXT|@FILE", help="VM configuration.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
              help="An environment variable the plugin sees (repeatable).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["trace", "debug", "info", "warn", "error", "critical"]),
              help="Lowest plugin log level Envoy shows.")
def proxy_cmd(wasm: str, upstream: str, listen: str, clusters: tuple[str, ...],
              record: str | None, watch: bool, root_id: str, vm_id: str,
              plugin_name: str | None, config: str | None, vm_config: str | None,
              env: tuple[str, ...], log_level: str) -> None:
    """Run the plugin in real Envoy between --listen and --upstream; print each stream as it
    completes, and what the plugin changed in it; Ctrl-C stops and prints a summary."""
    try:
        sys.exit(_run(wasm, upstream, listen, clusters, record, watch, root_id, vm_id,
                      plugin_name, config, vm_config, env, log_level))
    except PwcliError as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)


def _run(wasm: str, upstream: str, listen: str, clusters: tuple[str, ...], record: str | None,
         watch: bool, root_id: str, vm_id: str, plugin_name: str | None, config: str | None,
         vm_config: str | None, env: tuple[str, ...], log_level: str) -> int:
    from ..envoy.cli import check_available

    check_available("pwcli proxy")  # before anything starts: one line saying how to install it
    from ..envoy.config import PluginSetup
    from ..envoy.process import EnvoyRefused, envoy_version
    from ..report import make_console
    from .proxy import LiveProxy
    from .render import print_log, print_stream, summary

    path = Path(wasm)
    if not path.is_file():
        raise InputError(f"{wasm}: no such file")
    setup = PluginSetup(wasm=path.resolve(), root_id=root_id, vm_id=vm_id,
                        plugin_name=plugin_name or root_id,
                        configuration=(text_or_file(config, "--config") or b"").decode(),
                        vm_configuration=(text_or_file(vm_config, "--vm-config") or b"").decode(),
                        environment=key_values(env, "--env"))
    targets = {name: url_address(url, f"--cluster {name}")
               for name, url in key_values(clusters, "--cluster").items()}
    console = make_console()
    lock = threading.Lock()
    running: list[Any] = []  # the LiveProxy, once started

    def logs() -> None:
        with lock:
            for level, message in running[0].new_logs() if running else []:
                print_log(console, level, message)

    def shown(s: Any) -> None:
        logs()  # what the plugin logged up to the stream's end, then the stream
        with lock:
            print_stream(console, s)

    def note(line: str) -> None:
        with lock:
            click.echo(line, err=True)

    try:
        proxy = LiveProxy(setup, url_address(upstream, "--upstream"),
                          listen=listen_address(listen), clusters=targets, log_level=log_level,
                          on_stream=shown, note=note)
    except EnvoyRefused as refused:
        raise InputError(f"Envoy refused the plugin: {refused.reason}") from None
    running.append(proxy)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"pwcli proxy: http://{hostport(*proxy.address)} -> Envoy {envoy_version()} "
               f"with {path.name} -> {upstream}", err=True)
    rebuilt = FileWatch(path)
    try:
        while not stop.wait(POLL_SECONDS):
            logs()
            if watch and rebuilt.changed():
                try:
                    proxy.reload()
                    note(f"pwcli proxy: reloaded {path.name} in a new Envoy")
                except EnvoyRefused as refused:
                    note(f"pwcli proxy: Envoy refused the rebuilt plugin ({refused.reason}); "
                         "the previous one keeps serving")
    except KeyboardInterrupt:
        pass
    finally:
        logs()
        proxy.close()
    note(f"pwcli proxy: {summary(proxy.streams.streams)}")
    if record is not None:
        trace = proxy.recording()
        write_recording(trace, Path(record))
        note(f"pwcli proxy: wrote {len(trace['packets'])} packets to {record}")
    return 0


def url_address(url: str, option: str) -> tuple[str, int]:
    """``http://HOST:PORT`` as an address (https: the relays speak plain TCP to it)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise InputError(f"{option} {url!r}: expected http://HOST:PORT")
    try:
        return parts.hostname, parts.port or 80
    except ValueError:
        raise InputError(f"{option} {url!r}: bad port") from None


def listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InputError(f"--listen {text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def write_recording(trace: dict[str, Any], path: Path) -> None:
    """The trace in its object form, a packet a line."""
    head = {k: v for k, v in trace.items() if k != "packets"}
    lines = [json.dumps(p, ensure_ascii=False) for p in trace["packets"]]
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    text += ',\n "packets": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    path.write_text(text, encoding="utf-8")
