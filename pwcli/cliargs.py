"""Command-line values shared by the commands: ``TEXT|@FILE`` and ``KEY=VALUE`` options."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError


def text_or_file(value: str | None, option: str) -> bytes | None:
    """The option's text, or the content of the file after ``@``; None when not given."""
    if value is None:
        return None
    if value.startswith("@"):
        path = value[1:]
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise InputError(f"{option} {value}: cannot read {path}: "
                             f"{exc.strerror or exc}") from None
    return value.encode()


def key_values(items: tuple[str, ...] | list[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` items as a dict (one line, exit status 2, for an item without ``=``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{option} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out
