"""Runtime registry: backends are imported lazily by dotted name, so a missing engine is a clear
``BackendError`` and never an ImportError."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import BackendError
from .base import HostFunction, Limits, RuntimeInfo

__all__ = ["BACKENDS", "DEFAULT", "HostFunction", "Limits", "RuntimeInfo", "create", "describe"]

DEFAULT = "wasmtime"
BACKENDS: dict[str, str] = {
    "wasmtime": "pwcli.runtimes.wasmtime:WasmtimeRuntime",
    "wamr": "pwcli.runtimes.wamr:WamrRuntime",
    "wasmedge": "pwcli.runtimes.wasmedge:WasmEdgeRuntime",
}


def _load_class(name: str) -> Any:
    try:
        target = BACKENDS[name]
    except KeyError:
        known = ", ".join(BACKENDS)
        raise BackendError(f"unknown runtime {name!r} (known: {known})") from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise BackendError(f"runtime {name!r} is not available: {exc}") from None
    return getattr(module, cls_name)


def create(name: str = DEFAULT, **options: Any) -> Any:
    """Instantiate the backend ``name``; raises BackendError if it is unknown or missing."""
    return _load_class(name)(**options)


def describe(name: str) -> RuntimeInfo:
    """Whether ``name`` is available here, its version, and where its library is (or was looked for)."""
    try:
        cls = _load_class(name)
        info: RuntimeInfo = cls.describe()
        return info
    except BackendError as exc:
        return RuntimeInfo(name=name, available=False, detail=str(exc))
