"""Every error pwcli raises on purpose, in one tree.

    PwcliError                 base; ``str(err)`` is the one line the CLI prints
    ├── InputError             bad input from the user: exit status 2
    │   ├── TraceError         the trace file: names the file, the packet index and the field
    │   ├── PluginLoadError    the .wasm file: unreadable, not wasm, or refused as Envoy refuses it
    │   └── BackendError       an unknown runtime or a missing engine library (says where pwcli looked)
    └── GuestTrap              the guest trapped (or exited) inside a call; carries a canonical kind

``GuestExit`` is not an error the user sees: a host function raises it to end the current guest call
(WASI ``proc_exit``); every backend turns it into a ``GuestTrap`` of kind ``proc_exit``.

Anything else that escapes pwcli is a bug in pwcli and keeps its traceback.
"""

from __future__ import annotations


class PwcliError(Exception):
    """Base class of every error pwcli raises on purpose."""

    exit_code = 1


class InputError(PwcliError):
    """Bad input from the user (trace, plugin, options): exit status 2."""

    exit_code = 2


class TraceError(InputError):
    """An invalid trace. The message names the file, the packet index and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        packet: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.packet = packet
        self.field = field
        self.reason = message
        parts = []
        if path is not None:
            parts.append(path)
        if packet is not None:
            parts.append(f"packet {packet}")
        if field:
            parts.append(field)
        parts.append(message)
        super().__init__(": ".join(parts))


class PluginLoadError(InputError):
    """The plugin cannot be loaded: unreadable, not wasm, or refused as Envoy would refuse it."""


class BackendError(InputError):
    """An unknown runtime, or an engine whose library is missing."""


class GuestTrap(PwcliError):
    """The guest trapped inside a call.

    ``kind`` is canonical and identical on every runtime (``unreachable``, ``memory_out_of_bounds``,
    ``stack_overflow``, ``integer_divide_by_zero``, ``timeout``, ``memory_limit``, ``proc_exit``, ...);
    ``message`` and ``frames`` are the engine's own words and differ between runtimes.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        frames: tuple[str, ...] = (),
        exit_code: int | None = None,
        out_of_fuel: bool = False,
    ) -> None:
        self.kind = kind
        self.message = message
        self.frames = frames
        self.code = exit_code
        self.out_of_fuel = out_of_fuel  # a ``timeout`` from the deterministic budget (--budget)
        super().__init__(f"{kind}: {message}")


class GuestExit(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a host function to end the current guest call (WASI ``proc_exit``)."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"proc_exit({code})")


def cannot_listen(host: str, port: int, exc: OSError) -> InputError:
    """The one line for an address a server of pwcli's cannot listen on (exit status 2)."""
    import os

    from .textutil import hostport

    why = os.strerror(exc.errno) if exc.errno else str(exc)
    return InputError(f"{hostport(host, port)}: cannot listen there ({why})")
