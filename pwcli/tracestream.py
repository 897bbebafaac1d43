"""Large traces, read incrementally: JSON Lines (one packet per line) and big JSON arrays.

``open_trace(path)`` returns a ``Trace`` (the whole file validated up front, as ``load_trace``) for
ordinary traces, and a ``StreamedTrace`` for JSON Lines files and for JSON arrays larger than
``STREAM_ARRAY_BYTES``: its ``packets`` are parsed and validated one at a time while the replay
runs,
so memory stays flat however long the trace is. A bad packet met on the way raises ``TraceError``
with the same one line as ``load_trace`` (the packet index; for JSON Lines also ``file:line``); the
replay then stops and reports what it replayed before it.

JSON Lines: one packet object per line; blank lines are skipped. The first line may instead carry
the
trace-level settings (any of ``version``, ``plugin``, ``properties``, ``upstreams``, ``expect``), as
the object form of a trace does. A file is JSON Lines when its name ends in ``.jsonl`` or
``.ndjson``,
or when its first line is a whole JSON object and the next non-blank line starts another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from .errors import TraceError
from .trace import Packet, Trace, _trace_error, load_trace, parse_packet

STREAM_ARRAY_BYTES = 16 << 20  # JSON arrays above this size are read incrementally
CHUNK = 1 << 20
MAX_PACKET_TEXT = 256 << 20  # a syntax error is reported once this much text fails to parse
HEADER_KEYS = frozenset({"version", "plugin", "properties", "upstreams", "expect"})
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class StreamedTrace:
    """A trace whose packets are read and validated while they are replayed (once)."""

    streaming = True

    def __init__(self, path: str, kind: str, header: Trace | None) -> None:
        self.source = path
        self.kind = kind  # "jsonl" | "array"
        self.plugin = header.plugin if header is not None else None
        self.properties = header.properties if header is not None else None
        self.upstreams = header.upstreams if header is not None else None
        self.expect = header.expect if header is not None else None
        self.version = 1

    @property
    def packets(self) -> Iterator[Packet]:
        """A new pass over the file each time it is asked for (--loop reads it again)."""
        if self.kind == "jsonl":
            return iter_jsonl(self.source)
        return iter_array(self.source)


def open_trace(path: str | Path, *, stream: bool | None = None) -> Trace | StreamedTrace:
    """A ``Trace`` for ordinary traces; a ``StreamedTrace`` for JSON Lines and big arrays.

    ``stream`` forces (True) or forbids (False) incremental reading of a JSON array."""
    name = str(path)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise TraceError("no such file", path=name) from None
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror or exc}", path=name) from None
    with fh:
        head = fh.read(1 << 16)
        size = _size(fh)
    kind = _kind(name, head)
    if kind == "jsonl":
        return StreamedTrace(name, "jsonl", _jsonl_header(name))
    if kind == "array" and (stream or (stream is None and size > STREAM_ARRAY_BYTES)):
        return StreamedTrace(name, "array", None)
    return load_trace(path)


def _size(fh: IO[bytes]) -> int:
    try:
        return int(fh.seek(0, 2))
    except OSError:
        return 0


def _kind(name: str, head: bytes) -> str:
    if name.lower().endswith(JSONL_SUFFIXES):
        return "jsonl"
    text = head.lstrip()
    if text.startswith(b"["):
        return "array"
    if not text.startswith(b"{"):
        return "other"
    first, _, rest = text.partition(b"\n")
    try:
        obj = json.loads(first)
    except (ValueError, UnicodeDecodeError):
        return "other"
    if isinstance(obj, dict) and "packets" not in obj and rest.lstrip().startswith(b"{"):
        return "jsonl"
    return "other"


def _jsonl_header(name: str) -> Trace | None:
    """The trace-level settings on the first line of a JSON Lines trace, if it has them."""
    with open(name, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                return None  # reported with its line number when the packets are read
            if isinstance(obj, dict) and obj and set(obj) <= HEADER_KEYS:
                try:
                    return Trace.model_validate({**obj, "packets": [], "source": name})
                except ValidationError as exc:
                    raise _trace_error(exc, name, False) from None
            return None
    return None


def iter_jsonl(name: str) -> Iterator[Packet]:
    """Packets of a JSON Lines trace, validated one by one. Errors say ``file:line: packet N``."""
    index = 0
    first = True
    try:
        fh = open(name, "rb")  # noqa: SIM115 - a generator closes it
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror or exc}", path=name) from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{name}:{lineno}"
            try:
                raw = json.loads(line)
            except UnicodeDecodeError:
                raise TraceError("not UTF-8 text", path=where, packet=index) from None
            except json.JSONDecodeError as exc:
                raise TraceError(f"invalid JSON at column {exc.colno}: {exc.msg}", path=where,
                                 packet=index) from None
            if first:
                first = False
                if _is_header(raw):
                    continue
            yield parse_packet(raw, index, where)
            index += 1


def _is_header(raw: Any) -> bool:
    return isinstance(raw, dict) and bool(raw) and set(raw) <= HEADER_KEYS


def iter_array(name: str, chunk: int = CHUNK) -> Iterator[Packet]:
    """Packets of a JSON array trace, parsed element by element (json.JSONDecoder.raw_decode over
    chunks of the file), so only one packet is in memory at a time."""
    decoder = json.JSONDecoder()
    try:
        fh = open(name, encoding="utf-8", newline="")  # noqa: SIM115 - a generator closes it
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror or exc}", path=name) from None
    with fh:
        reader = _Chunks(fh, name, chunk)
        reader.skip_ws()
        if reader.peek() != "[":
            raise reader.error("expected '[' (a JSON array of packets)")
        reader.pos += 1
        index = 0
        reader.skip_ws()
        if reader.peek() == "]":
            return
        while True:
            raw = reader.value(decoder, index)
            yield parse_packet(raw, index, name)
            index += 1
            reader.skip_ws()
            c = reader.peek()
            if c == ",":
                reader.pos += 1
                reader.skip_ws()
                continue
            if c == "]":
                reader.pos += 1
                reader.skip_ws()
                if reader.peek() != "":
                    raise reader.error("extra data after the array")
                return
            raise reader.error("expected ',' or ']' after a packet")


class _Chunks:
    """A window over a text file: ``buf[pos:]`` is unread; older text is dropped as we go."""

    def __init__(self, fh: IO[str], name: str, chunk: int) -> None:
        self.fh = fh
        self.name = name
        self.chunk = chunk
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line number of buf[0]
        self.line_start = 0  # offset in buf where the line of buf[0] starts (may be negative)

    def _more(self, at_least: int = 0) -> bool:
        if self.eof:
            return False
        # Drop what was consumed, keeping line/column accounting for error messages.
        done = self.buf[: self.pos]
        nl = done.count("\n")
        if nl:
            self.line += nl
            self.line_start = done.rindex("\n") + 1 - self.pos
        else:
            self.line_start -= self.pos
        self.buf = self.buf[self.pos :]
        self.pos = 0
        try:
            data = self.fh.read(max(self.chunk, at_least))
        except UnicodeDecodeError:
            raise TraceError("not UTF-8 text", path=self.name) from None
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def peek(self) -> str:
        while self.pos >= len(self.buf):
            if not self._more():
                return ""
        return self.buf[self.pos]

    def skip_ws(self) -> None:
        while True:
            buf, pos = self.buf, self.pos
            n = len(buf)
            while pos < n and buf[pos] in " \t\r\n":
                pos += 1
            self.pos = pos
            if pos < n or not self._more():
                return

    def value(self, decoder: json.JSONDecoder, index: int) -> Any:
        while True:
            try:
                obj, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof or len(self.buf) - self.pos > MAX_PACKET_TEXT:
                    raise self.error(exc.msg, exc.pos, index) from None
                self._more(len(self.buf))  # a packet cut by the chunk: read more and retry
                continue
            if end >= len(self.buf) and not self.eof:
                self._more(len(self.buf))  # a number or literal may go on: make sure
                continue
            self.pos = end
            return obj

    def error(self, msg: str, at: int | None = None, packet: int | None = None) -> TraceError:
        at = self.pos if at is None else at
        before = self.buf[:at]
        nl = before.count("\n")
        line = self.line + nl
        col = at - (before.rindex("\n") + 1) + 1 if nl else at - self.line_start + 1
        return TraceError(f"invalid JSON at line {line} column {col}: {msg}", path=self.name,
                          packet=packet)
