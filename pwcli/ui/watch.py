"""``pwcli ui --watch``: when the plugin of the latest run is rebuilt, run it again."""

from __future__ import annotations

import asyncio

from ..errors import InputError
from ..filewatch import FileWatch
from .runs import PLUGIN_SUFFIXES, Files, Runs, RunSpec

POLL_SECONDS = 0.3


class Watcher:
    def __init__(self, files: Files, runs: Runs) -> None:
        self.files = files
        self.runs = runs
        self.spec: RunSpec | None = None
        self.rebuilt: FileWatch | None = None
        self.task: asyncio.Task[None] | None = None

    def follow(self, spec: RunSpec) -> None:
        """Watch this run's plugin from now on."""
        try:
            path = self.files.resolve(spec.plugin, PLUGIN_SUFFIXES)
        except InputError:
            return
        self.spec = spec
        self.rebuilt = FileWatch(path)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.task = loop.create_task(self._loop())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL_SECONDS)  # polling a file, not timing a test
            if self.rebuilt is None or self.spec is None or not self.rebuilt.changed():
                continue
            run = self.runs.start(self.spec)
            await loop.run_in_executor(None, self.runs.execute, run)
