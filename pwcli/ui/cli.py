"""``pwcli ui``: serve the web app on loopback (unless told otherwise) and open the browser."""

from __future__ import annotations

import socket
import sys
import webbrowser
from pathlib import Path

import click

from ..errors import InputError, PwcliError, cannot_listen

UI_HINT = "pwcli ui needs its web server: pip install 'pwcli[ui]' (Starlette and uvicorn)"


@click.command("ui", context_settings={"help_option_names": ["-h", "--help"],
                                       "max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on (loopback unless told otherwise).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port).")
@click.option("--dir", "dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A directory whose plugins and traffic files the page may use (repeatable; "
                   "default: the current directory). Nothing outside them is read.")
@click.option("--watch", is_flag=True, help="Run the latest run again when its plugin changes.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
def ui_cmd(host: str, port: int, dirs: tuple[Path, ...], watch: bool, no_browser: bool) -> None:
    """A local web app: choose a plugin, compose a request and response (or open a trace or a
    capture), send, and watch the timeline fill; history and side-by-side comparison."""
    try:
        try:
            import uvicorn

            from .app import create_app
        except ImportError:
            raise InputError(UI_HINT) from None
        roots = list(dirs) or [Path.cwd()]
        for d in roots:
            if not d.is_dir():
                raise InputError(f"--dir {d}: no such directory")
        sock = _bind(host, port)
        address = sock.getsockname()
        shown = f"[{address[0]}]" if ":" in address[0] else address[0]
        url = f"http://{shown}:{address[1]}/"
        click.echo(f"pwcli ui: {url} (Ctrl-C stops it)", err=True)
        if not no_browser:
            webbrowser.open(url)
        config = uvicorn.Config(create_app(roots, watch=watch), log_level="warning",
                                lifespan="on", ws="websockets-sansio")
        uvicorn.Server(config).run(sockets=[sock])
    except PwcliError as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise cannot_listen(host, port, exc) from None
