"""pytest plugin (entry point ``pwcli``): the ``pwcli_replay`` and ``pwcli_session`` fixtures,
``--pwcli-update-golden``.

    def test_adds_header(pwcli_replay):
        run = pwcli_replay("filter.wasm", [request_packet, response_packet])
        assert run.stream(0).response.header("x-wasm-custom") == "FOO"

    def test_one_request(pwcli_session):
        s = pwcli_session("filter.wasm")
        assert s.http({"method": "GET", "uri_path": "/"}, {}).response.header("x-wasm-custom")

The fixture replays a plugin against a trace file, a trace object or packets built in Python and
returns the ``Run``. When the trace has expect blocks, a failed expectation fails the test with
pwcli's messages; ``golden=`` compares the JSON report with a golden file, written by
``pytest --pwcli-update-golden``. ``pwcli_session`` opens a ``pwcli.Session`` for tests that
drive the plugin packet by packet. Paths are used as given (relative to the current directory).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .engine import ReplayOptions, Run, Session, replay
from .golden import check as check_golden
from .plugin import load_plugin
from .report import to_json
from .trace import Trace, load_trace, parse_trace

UPDATE_OPTION = "--pwcli-update-golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pwcli")
    group.addoption(UPDATE_OPTION, action="store_true", default=False,
                    help="pwcli_replay(..., golden=FILE): write FILE instead of comparing.")


class Replay:
    """The ``pwcli_replay`` fixture's value: call it to replay a plugin; returns the ``Run``."""

    def __init__(self, *, update: bool = False) -> None:
        self.update = update

    def __call__(
        self,
        wasm: str | Path,
        trace: str | Path | Trace | list[dict[str, Any]] | dict[str, Any],
        *,
        config: str | bytes | None = None,
        vm_config: str | bytes | None = None,
        golden: str | Path | None = None,
        check: bool = True,
        lenient: bool = False,
        abi: str | None = None,
        **options: Any,
    ) -> Run:
        """Replay ``trace`` through the plugin ``wasm``.

        ``config`` and ``vm_config`` are the plugin and VM configuration; every other keyword is a
        ``pwcli.ReplayOptions`` field (``runtime``, ``root_id``, ``environment``, ``log_level``,
        ``seed``, ``properties``, ...). With ``check`` (the default), failed expect blocks fail the
        test; ``golden`` compares the JSON report with that file.
        """
        if config is not None:
            options["configuration"] = config.encode() if isinstance(config, str) else config
        if vm_config is not None:
            options["vm_configuration"] = (
                vm_config.encode() if isinstance(vm_config, str) else vm_config)
        run = replay(load_plugin(wasm, lenient=lenient, abi=abi), _trace(trace),
                     ReplayOptions(**options))
        if check and run.expectations is not None and not run.expectations.ok:
            pytest.fail("\n".join(run.expectations.lines()), pytrace=False)
        if golden is not None:
            path = Path(golden)
            result = check_golden(path, to_json(run), update=self.update)
            if not result.ok:
                lines = result.lines()
                if result.status == "missing":
                    lines = [f"golden {path}: no such file; "
                             f"run pytest {UPDATE_OPTION} to create it"]
                elif lines and lines[-1].startswith("if the change is intended"):
                    lines[-1] = f"if the change is intended, run pytest {UPDATE_OPTION}"
                pytest.fail("\n".join(lines), pytrace=False)
        return run


def _trace(trace: str | Path | Trace | list[dict[str, Any]] | dict[str, Any]) -> Trace:
    if isinstance(trace, Trace):
        return trace
    if isinstance(trace, list | dict):
        return parse_trace(trace, source="<packets>")
    return load_trace(trace)


@pytest.fixture
def pwcli_replay(request: pytest.FixtureRequest) -> Replay:
    """Replay a plugin against a trace file or packets built in Python; returns the ``Run``."""
    update = bool(request.config.getoption(UPDATE_OPTION, default=False))
    return Replay(update=update)


@pytest.fixture
def pwcli_session() -> Iterator[Callable[..., Session]]:
    """Open a ``pwcli.Session`` on a plugin: ``s = pwcli_session("filter.wasm", trace=..., **opts)``
    (``trace`` gives upstreams and properties; other keywords are ReplayOptions fields). Sessions
    still open are closed when the test ends."""
    opened: list[Session] = []

    def open_session(wasm: str | Path, *, trace: Any = None, lenient: bool = False,
                     abi: str | None = None, **options: Any) -> Session:
        s = Session(load_plugin(wasm, lenient=lenient, abi=abi), ReplayOptions(**options),
                    _trace(trace) if trace is not None else None)
        opened.append(s)
        return s

    yield open_session
    for s in opened:
        s.close()
