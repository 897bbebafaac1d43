"""pytest plugin (entry point ``pwcli``): the ``pwcli_replay`` fixture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .plugin import load_plugin
from .replay import ReplayOptions, Run, replay
from .trace import load_trace, parse_trace


def _replay(wasm: str | Path, trace: str | Path | list[dict[str, Any]] | dict[str, Any],
            **options: Any) -> Run:
    lenient = options.pop("lenient", False)
    abi = options.pop("abi", None)
    tr = parse_trace(trace, source="<packets>") if isinstance(trace, list | dict) else load_trace(trace)
    return replay(load_plugin(wasm, lenient=lenient, abi=abi), tr, ReplayOptions(**options))


@pytest.fixture
def pwcli_replay() -> Callable[..., Run]:
    """Replay a plugin against a trace file or packets built in Python; returns the ``Run``."""
    return _replay
