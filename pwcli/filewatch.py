"""A rebuilt file, noticed by polling: ``pwcli proxy --watch`` and ``pwcli ui --watch``."""

from __future__ import annotations

import os
from pathlib import Path


class FileWatch:
    """``changed()``, called once per poll, is true once the file's modification time has moved
    and then stayed the same for one more poll (the build finished writing it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen = _mtime(path)
        self.pending: int | None = None

    def changed(self) -> bool:
        now = _mtime(self.path)
        if now is None or now == self.seen:
            self.pending = None
            return False
        if now != self.pending:
            self.pending = now  # moved since the last poll: maybe still being written
            return False
        self.seen, self.pending = now, None
        return True


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None
