"""The backend contract: what pwcli needs from a WebAssembly engine, and nothing about proxy-wasm.

A backend loads a module with a list of host functions, calls exports, reads and writes linear memory
and reports every trap as ``GuestTrap`` with a canonical kind. It is driven through three small
protocols, so a third-party backend needs no inheritance.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class OutOfBounds(Exception):  # noqa: N818 - mirrors the wasm trap name
    """A host-side access outside the guest's linear memory."""


@dataclass(frozen=True)
class HostFunction:
    """One import the backend must provide. ``fn`` takes the wasm arguments as Python ints and
    returns an int (or None when the function has no result)."""

    module: str
    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]
    fn: Callable[..., int | None]


@dataclass(frozen=True)
class Limits:
    """Resource limits, enforced the same way by every backend.

    ``fuel``: deterministic per-call budget in wasm instructions (approximately, per engine), None
    for unlimited; ``max_memory``: bytes of linear memory; ``wall_seconds``: a generous wall-clock
    guard per call; ``stack``: bytes of wasm stack.
    """

    fuel: int | None = 100_000_000
    max_memory: int = 256 << 20
    wall_seconds: float | None = 30.0
    stack: int = 1 << 20


@dataclass
class RuntimeInfo:
    name: str
    available: bool
    version: str | None = None
    location: str | None = None
    detail: str = ""
    features: dict[str, bool] = field(default_factory=dict)


class Memory(Protocol):
    def read(self, ptr: int, size: int) -> bytes: ...
    def write(self, ptr: int, data: bytes) -> None: ...
    def size(self) -> int: ...


class ViewMemory:
    """A ``Memory`` seen through a memoryview over the engine's linear memory.

    Subclasses implement ``refresh()``: re-read the memory's size (and base, if the engine may move
    it) and rebuild ``view``. Accesses past the known end refresh first, since the guest may have
    grown its memory; a subclass whose base can move sets ``stale`` whenever guest code has run.
    """

    __slots__ = ("view", "_size", "stale")

    def __init__(self) -> None:
        self.view = memoryview(b"")
        self._size = 0
        self.stale = False

    def refresh(self) -> None:
        raise NotImplementedError

    def size(self) -> int:
        self.refresh()
        return self._size

    def check(self, ptr: int, size: int) -> None:
        """Raise OutOfBounds unless [ptr, ptr + size) is inside the memory."""
        if self.stale or ptr + size > self._size:
            self.refresh()
            if ptr + size > self._size or ptr < 0 or size < 0:
                raise OutOfBounds(ptr, size)

    def read(self, ptr: int, size: int) -> bytes:
        end = ptr + size
        if self.stale or end > self._size:
            self.refresh()
            if end > self._size or ptr < 0 or size < 0:
                raise OutOfBounds(ptr, size)
        return self.view[ptr:end].tobytes()

    def write(self, ptr: int, data: bytes) -> None:
        end = ptr + len(data)
        if self.stale or end > self._size:
            self.refresh()
            if end > self._size or ptr < 0:
                raise OutOfBounds(ptr, len(data))
        self.view[ptr:end] = data

    def write_u32(self, ptr: int, value: int) -> None:
        if self.stale or ptr + 4 > self._size:
            self.refresh()
            if ptr + 4 > self._size or ptr < 0:
                raise OutOfBounds(ptr, 4)
        _pack_u32(self.view, ptr, value & 0xFFFFFFFF)


_pack_u32 = struct.Struct("<I").pack_into


class Instance(Protocol):
    memory: Memory

    def has_export(self, name: str) -> bool: ...
    def call(self, name: str, *args: int) -> int | None: ...
    def fuel_consumed(self) -> int: ...


class Runtime(Protocol):
    name: str

    def version(self) -> str: ...
    def load(
        self, wasm: bytes, imports: Sequence[HostFunction], *, limits: Limits, cache: bool = True
    ) -> Instance: ...


# Canonical trap kinds: the same words on every runtime.
TRAP_KINDS = (
    "unreachable",
    "memory_out_of_bounds",
    "table_out_of_bounds",
    "indirect_call_to_null",
    "bad_signature",
    "integer_overflow",
    "integer_divide_by_zero",
    "bad_conversion_to_integer",
    "stack_overflow",
    "timeout",
    "memory_limit",
    "proc_exit",
    "restricted_callback",
    "trap",
)
