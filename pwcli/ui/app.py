"""The web app of ``pwcli ui`` (Starlette, served by uvicorn): the page, a JSON API, and a
WebSocket that carries each run's events as they happen.

    GET  /                 the page (the report renderer and the composer, inline)
    GET  /api/files        plugins and traffic files in the given directories; runtimes
    GET  /api/runs         the history;   GET /api/runs/{id}: one run's report data
    POST /api/runs         start a run: {"plugin", "runtime", "root_id", "configuration",
                           "file" | "request": {...}, "response": {...}} -> {"id"}
    WS   /ws               {"type": "started" | "event" | "done" | "error", "id", ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import InputError
from ..html.report import asset
from .runs import PLUGIN_SUFFIXES, TRAFFIC_SUFFIXES, Files, Runs, RunSpec
from .watch import Watcher


class Hub:
    """Every open page's WebSocket; messages from worker threads reach them through the loop."""

    def __init__(self) -> None:
        self.sockets: set[WebSocket] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def publish(self, message: dict[str, Any]) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._send, json.dumps(message))

    def _send(self, text: str) -> None:
        for ws in list(self.sockets):
            asyncio.ensure_future(self._deliver(ws, text))

    async def _deliver(self, ws: WebSocket, text: str) -> None:
        try:
            await ws.send_text(text)
        except Exception:  # noqa: BLE001 - a page that went away
            self.sockets.discard(ws)


@functools.cache
def page() -> str:
    """The page, made once: the composer with the report's renderer inline."""
    return (asset("ui.html", "pwcli.ui").replace("/*REPORT_CSS*/", asset("report.css"))
            .replace("/*REPORT_JS*/", asset("report.js"))
            .replace("/*UI_JS*/", asset("ui.js", "pwcli.ui")))


def create_app(dirs: list[Path], *, watch: bool = False) -> Starlette:
    files = Files(dirs)
    hub = Hub()
    runs = Runs(files, hub.publish)
    watcher = Watcher(files, runs) if watch else None

    async def index(request: Request) -> Response:
        return HTMLResponse(page())

    async def list_files(request: Request) -> Response:
        from .. import runtimes

        return JSONResponse({"plugins": files.listing(PLUGIN_SUFFIXES),
                             "traffic": files.listing(TRAFFIC_SUFFIXES),
                             "runtimes": [n for n in runtimes.BACKENDS
                                          if runtimes.describe(n).available],
                             "watch": watch})

    async def history(request: Request) -> Response:
        return JSONResponse([r.summary() for r in reversed(runs.history.values())])

    async def one(request: Request) -> Response:
        run = runs.history.get(int(request.path_params["id"]))
        if run is None:
            return JSONResponse({"error": "no such run"}, status_code=404)
        return JSONResponse({"id": run.id, "label": run.spec.label(), "error": run.error,
                             "data": run.data})

    async def start(request: Request) -> Response:
        try:
            spec = RunSpec.parse(await request.json())
            files.resolve(spec.plugin, PLUGIN_SUFFIXES)  # refused here, before anything runs
        except (InputError, ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        run = runs.start(spec)
        if watcher is not None:
            watcher.follow(spec)
        asyncio.get_running_loop().run_in_executor(None, runs.execute, run)
        return JSONResponse({"id": run.id})

    async def socket(ws: WebSocket) -> None:
        await ws.accept()
        hub.loop = asyncio.get_running_loop()
        hub.sockets.add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            hub.sockets.discard(ws)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.loop = asyncio.get_running_loop()
        if watcher is not None:
            watcher.start(hub.loop)
        yield
        if watcher is not None:
            watcher.stop()

    return Starlette(routes=[
        Route("/", index), Route("/api/files", list_files), Route("/api/runs", history),
        Route("/api/runs", start, methods=["POST"]), Route("/api/runs/{id:int}", one),
        WebSocketRoute("/ws", socket)], lifespan=lifespan)
