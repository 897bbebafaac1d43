"""Pure bytes <-> values: the serialized pairs format, property paths, little-endian integers."""

from __future__ import annotations

import struct

PAIRS_MAX_BYTES = 1 << 20  # proxy-wasm-cpp-host PROXY_WASM_HOST_PAIRS_MAX_BYTES
PAIRS_MAX_COUNT = 1024  # proxy-wasm-cpp-host PAIRS_MAX_COUNT

Pairs = list[tuple[bytes, bytes]]

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


def encode_pairs(pairs: Pairs) -> bytes:
    """Serialize pairs: count, lengths, then NUL-terminated names and values."""
    if not pairs:
        return b""
    head = [len(pairs)]
    body: list[bytes] = []
    for name, value in pairs:
        head += (len(name), len(value))
        body += (name, b"\0", value, b"\0")
    return struct.pack(f"<{len(head)}I", *head) + b"".join(body)


def decode_pairs(data: bytes) -> Pairs | None:
    """Decode serialized pairs. Malformed input gives None (cpp-host treats it as an empty map)."""
    if len(data) < 4:
        return [] if not data or data == b"\0" else None
    if len(data) > PAIRS_MAX_BYTES:
        return None
    (count,) = _U32.unpack_from(data, 0)
    if count > PAIRS_MAX_COUNT or 4 + 8 * count > len(data):
        return None
    lengths = struct.unpack_from(f"<{2 * count}I", data, 4)
    pos = 4 + 8 * count
    out: Pairs = []
    for i in range(count):
        nlen, vlen = lengths[2 * i], lengths[2 * i + 1]
        end = pos + nlen + vlen + 2
        if end > len(data) or data[pos + nlen] != 0 or data[end - 1] != 0:
            return None
        out.append((data[pos : pos + nlen], data[pos + nlen + 1 : end - 1]))
        pos = end
    return out


def u32(value: int) -> bytes:
    return _U32.pack(value & 0xFFFFFFFF)


def u64(value: int) -> bytes:
    return _U64.pack(value & 0xFFFFFFFFFFFFFFFF)


def i64(value: int) -> bytes:
    return _I64.pack(value)


def split_path(path: bytes) -> tuple[str, ...]:
    """A property path: segments joined by NUL; one trailing NUL (C++ SDK) is accepted."""
    if path.endswith(b"\0"):
        path = path[:-1]
    return tuple(seg.decode("utf-8", "replace") for seg in path.split(b"\0"))
