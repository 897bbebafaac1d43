"""The ``pwcli serve`` command (``pwcli client`` is in client.py)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback unless you ask for another).")
@click.option("--port", default=50051, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free one, printed).")
@click.option("--plugins-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=".", show_default=True,
              help="LaunchInstance's wasm_file is resolved inside this directory, never outside.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              help="On SIGINT/SIGTERM, each VM's final report is written here.")
@click.option("--max-request-mb", default=64, show_default=True, type=click.IntRange(min=1),
              help="The largest request accepted.")
@click.option("--keep-streams", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Finished streams a VM's report keeps (older ones are counted, then dropped).")
def serve_cmd(host: str, port: int, plugins_dir: Path, report_dir: Path | None,
              max_request_mb: int, keep_streams: int) -> None:
    """Serve proxy-wasm-cli's gRPC API (WasmHost): VMs launched, fed traffic and inspected by
    clients (pwcli client, or the original's)."""
    try:
        from .server import serve
    except ImportError:
        raise InputError("pwcli serve needs gRPC: pip install 'pwcli[serve]'") from None
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)

    def ready(bound: int) -> None:
        click.echo(f"pwcli serve: listening on {host}:{bound} (plugins from {plugins_dir})")

    written = serve(host, port, plugins_dir, report_dir=report_dir,
                    max_request_mb=max_request_mb, keep_streams=keep_streams, ready=ready)
    for path in written:
        click.echo(f"pwcli serve: final report {path}")


class ClientGroup(click.Group):
    """``pwcli client``: its commands load with gRPC, when first used; an error is one line."""

    def _group(self) -> click.Group:
        try:
            from .client import client_group
        except ImportError:
            raise click.ClickException("pwcli client needs gRPC: pip install 'pwcli[serve]'") \
                from None
        return client_group

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            return self._group().list_commands(ctx)
        except click.ClickException:
            return []

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._group().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> None:
        from ..errors import PwcliError

        try:
            super().invoke(ctx)
        except PwcliError as exc:
            click.echo(str(exc), err=True)
            ctx.exit(2)


client_cmd = ClientGroup("client", help="Drive a pwcli serve (or proxy-wasm-cli) server: VMs "
                                        "named project:name.")
