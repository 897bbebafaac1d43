"""Small text helpers shared by the host, the engine, expectations and reports (defined once)."""

from __future__ import annotations


def text(b: bytes | bytearray | memoryview) -> str:
    """Bytes as report text: UTF-8, with undecodable bytes shown as ``\\xNN``."""
    return bytes(b).decode("utf-8", "backslashreplace") if isinstance(b, memoryview) else \
        b.decode("utf-8", "backslashreplace")


def preview(b: bytes | bytearray, limit: int = 256) -> str:
    """The first ``limit`` bytes as text, with the full size when longer."""
    shown = text(b[:limit])
    return shown if len(b) <= limit else f"{shown}... ({len(b)} bytes)"


def hostport(ip: str, port: int) -> str:
    """``ip:port``, with an IPv6 address in brackets (``[::1]:80``)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
