"""``pwcli ui --watch``: when the plugin of the latest run is rebuilt, run it again."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ..errors import InputError
from .runs import PLUGIN_SUFFIXES, Files, Runs, RunSpec

POLL_SECONDS = 0.3


class Watcher:
    def __init__(self, files: Files, runs: Runs) -> None:
        self.files = files
        self.runs = runs
        self.spec: RunSpec | None = None
        self.path: Path | None = None
        self.seen: int | None = None
        self.task: asyncio.Task[None] | None = None

    def follow(self, spec: RunSpec) -> None:
        """Watch this run's plugin from now on."""
        try:
            self.path = self.files.resolve(spec.plugin, PLUGIN_SUFFIXES)
        except InputError:
            return
        self.spec = spec
        self.seen = _mtime(self.path)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.task = loop.create_task(self._loop())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL_SECONDS)  # polling a file, not timing a test
            if self.path is None or self.spec is None:
                continue
            now = _mtime(self.path)
            if now is None or now == self.seen:
                continue
            await asyncio.sleep(POLL_SECONDS)  # let the build finish writing it
            if _mtime(self.path) != now:
                continue
            self.seen = now
            run = self.runs.start(self.spec)
            await loop.run_in_executor(None, self.runs.execute, run)


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None
