"""A call-depth limit for engines that have none (WasmEdge's interpreter keeps frames on the heap).

``instrument(wasm, limit)`` rewrites a module so that every defined function counts its depth in
a new mutable global: on entry it traps with ``unreachable`` when the count is already ``limit``,
else increments it; every way out (the end, ``return``, a tail call) decrements it. Two exported
helper functions are appended (appending keeps every existing index): ``__pwcli_depth`` reads the
count (== ``limit`` right after an overflow trap) and ``__pwcli_depth_reset`` zeroes it after a
trap skipped the decrements. Each body is wrapped in a block with the function's results, so a
``br`` to the function's label and ``return`` (rewritten to ``br``) both reach the decrement.

Returns None for modules it cannot rewrite (GC or unknown opcodes): they then run without a limit.
"""

from __future__ import annotations

DEPTH_EXPORT = "__pwcli_depth"
RESET_EXPORT = "__pwcli_depth_reset"

_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}
_VALTYPES = {
    0x7F,
    0x7E,
    0x7D,
    0x7C,
    0x7B,
    0x70,
    0x6F,
    0x69,
    0x6A,
    0x6B,
    0x6C,
    0x6D,
    0x6E,
    0x71,
    0x72,
    0x73,
    0x74,
}


class _Unsupported(Exception):
    pass


class _R:
    __slots__ = ("d", "p")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.d, self.p = data, pos

    def byte(self) -> int:
        b = self.d[self.p]
        self.p += 1
        return b

    def leb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def skip(self, n: int) -> None:
        self.p += n
        if self.p > len(self.d):
            raise IndexError(self.p)

    def heaptype(self) -> None:
        self.leb()  # s33: abstract heap types are single negative bytes, type indices positive

    def valtype(self) -> None:
        b = self.byte()
        if b in (0x63, 0x64):
            self.heaptype()
        elif b not in _VALTYPES:
            raise _Unsupported(f"value type 0x{b:02x}")

    def blocktype(self) -> None:
        b = self.d[self.p]
        if b == 0x40 or b in _VALTYPES:
            self.p += 1
        elif b in (0x63, 0x64):
            self.p += 1
            self.heaptype()
        else:
            self.leb()

    def memarg(self) -> None:
        align = self.leb()
        if align & 0x40:
            self.leb()
        self.leb()


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def _vec(items: list[bytes]) -> bytes:
    return _leb(len(items)) + b"".join(items)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + _leb(len(payload)) + payload


_NO_IMM = set(range(0x45, 0xC5)) | {
    0x00,
    0x01,
    0x05,
    0x0A,
    0x0F,
    0x19,
    0x1A,
    0x1B,
    0xD1,
    0xD3,
    0xD4,
}
_IDX1 = {
    0x07,
    0x08,
    0x09,
    0x0C,
    0x0D,
    0x10,
    0x12,
    0x14,
    0x15,
    0x18,
    0x20,
    0x21,
    0x22,
    0x23,
    0x24,
    0x25,
    0x26,
    0x3F,
    0x40,
    0xD2,
    0xD5,
    0xD6,
}
_SIMD_MEMARG = set(range(12)) | {92, 93}
_SIMD_LANE = set(range(21, 35))
_SIMD_MEMARG_LANE = set(range(84, 92))
_FC_IMM = {8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1}


def _rewrite_body(code: bytes, pos: int, end: int, g: int, limit: int, block: bytes) -> bytes:
    """One function body: locals verbatim, prologue, the wrapped expression, epilogue."""
    r = _R(code, pos)
    for _ in range(r.leb()):  # local declarations
        r.leb()
        r.valtype()
    locals_raw = code[pos : r.p]
    gi = _leb(g)
    dec = b"\x23" + gi + b"\x41\x01\x6b\x24" + gi  # global.get; i32.const 1; i32.sub; global.set
    pro = (
        b"\x23" + gi + b"\x41" + _sleb(limit) + b"\x4f\x04\x40\x00\x0b"  # >= limit: unreachable
        b"\x23" + gi + b"\x41\x01\x6a\x24" + gi
    )  # depth += 1
    out = bytearray(locals_raw + pro + b"\x02" + block)
    depth = 0
    start = r.p
    while True:
        at = r.p
        op = r.byte()
        if op == 0x0B:  # end
            if depth == 0:
                out += code[start:at] + b"\x0b" + dec + b"\x0b"
                if r.p != end:
                    raise _Unsupported("code after the function's end")
                return bytes(out)
            depth -= 1
        elif op == 0x0F:  # return -> br to the wrapper block
            out += code[start:at] + b"\x0c" + _leb(depth)
            start = r.p
        elif op in (0x12, 0x13, 0x15):  # tail calls leave this frame first
            out += code[start:at] + dec
            start = at
            r.leb()
            if op == 0x13:
                r.leb()
        elif op in (0x02, 0x03, 0x04, 0x06):
            r.blocktype()
            depth += 1
        elif op == 0x1F:  # try_table
            r.blocktype()
            for _ in range(r.leb()):
                kind = r.byte()
                if kind in (0, 1):
                    r.leb()
                r.leb()
            depth += 1
        elif op == 0x18:  # delegate closes a try
            r.leb()
            depth -= 1
        elif op in _NO_IMM:
            pass
        elif op in _IDX1:
            r.leb()
        elif op == 0x0E:  # br_table
            for _ in range(r.leb() + 1):
                r.leb()
        elif op == 0x11:  # call_indirect
            r.leb()
            r.leb()
        elif op == 0x1C:  # select t*
            for _ in range(r.leb()):
                r.valtype()
        elif 0x28 <= op <= 0x3E:
            r.memarg()
        elif op in (0x41, 0x42):
            r.leb()
        elif op == 0x43:
            r.skip(4)
        elif op == 0x44:
            r.skip(8)
        elif op == 0xD0:
            r.heaptype()
        elif op == 0xFC:
            sub = r.leb()
            for _ in range(_FC_IMM.get(sub, 0)):
                r.leb()
            if sub > 17:
                raise _Unsupported(f"opcode 0xfc {sub}")
        elif op == 0xFD:
            sub = r.leb()
            if sub in _SIMD_MEMARG:
                r.memarg()
            elif sub in (12, 13):
                r.skip(16)
            elif sub in _SIMD_LANE:
                r.skip(1)
            elif sub in _SIMD_MEMARG_LANE:
                r.memarg()
                r.skip(1)
        elif op == 0xFE:
            sub = r.leb()
            if sub == 0x03:
                r.skip(1)
            else:
                r.memarg()
        else:
            raise _Unsupported(f"opcode 0x{op:02x}")


def instrument(wasm: bytes, limit: int) -> bytes | None:
    try:
        return _instrument(bytes(wasm), limit)
    except (_Unsupported, IndexError):
        return None


def _instrument(wasm: bytes, limit: int) -> bytes:
    r = _R(wasm, 8)
    sections: list[tuple[int, bytes]] = []
    while r.p < len(wasm):
        sid = r.byte()
        size = r.leb()
        sections.append((sid, wasm[r.p : r.p + size]))
        r.skip(size)
    by_id = {sid: payload for sid, payload in sections if sid != 0}
    # Types: (params, results) raw bytes per index, to build the wrapper blocks.
    types: list[tuple[int, list[bytes]]] = []  # (number of params, result valtypes)
    if 1 in by_id:
        t = _R(by_id[1])
        for _ in range(t.leb()):
            form = t.byte()
            if form != 0x60:
                raise _Unsupported("type form")
            np = t.leb()
            for _ in range(np):
                t.valtype()
            results = []
            for _ in range(t.leb()):
                s = t.p
                t.valtype()
                results.append(t.d[s : t.p])
            types.append((np, results))
    type_count = len(types)
    imported_funcs = imported_globals = 0
    if 2 in by_id:
        t = _R(by_id[2])
        for _ in range(t.leb()):
            t.skip(t.leb())
            t.skip(t.leb())
            kind = t.byte()
            if kind == 0:
                t.leb()
                imported_funcs += 1
            elif kind == 1:  # table
                t.valtype()
                flags = t.byte()
                t.leb()
                if flags & 1:
                    t.leb()
            elif kind == 2:  # memory
                flags = t.byte()
                t.leb()
                if flags & 1:
                    t.leb()
            elif kind == 3:
                t.valtype()
                t.byte()
                imported_globals += 1
            else:
                raise _Unsupported("import kind")
    func_types: list[int] = []
    if 3 in by_id:
        t = _R(by_id[3])
        func_types = [t.leb() for _ in range(t.leb())]
    defined_globals = 0
    if 6 in by_id:
        defined_globals = _R(by_id[6]).leb()
    g = imported_globals + defined_globals
    new_types: list[bytes] = []
    multi: dict[tuple[bytes, ...], int] = {}

    def block_for(type_index: int) -> bytes:
        _, results = types[type_index]
        if not results:
            return b"\x40"
        if len(results) == 1:
            return results[0]
        key = tuple(results)
        if key not in multi:
            multi[key] = type_count + len(new_types)
            new_types.append(b"\x60\x00" + _vec(list(results)))
        return _sleb(multi[key])

    bodies: list[bytes] = []
    if 10 in by_id:
        c = _R(by_id[10])
        n = c.leb()
        if n != len(func_types):
            raise _Unsupported("function and code sections disagree")
        for i in range(n):
            size = c.leb()
            body = _rewrite_body(c.d, c.p, c.p + size, g, limit, block_for(func_types[i]))
            bodies.append(_leb(len(body)) + body)
            c.skip(size)
    # The helpers: () -> i32 reads the depth, () -> () resets it.
    helper_types = [b"\x60\x00\x01\x7f", b"\x60\x00\x00"]
    t_get = type_count + len(new_types)
    t_reset = t_get + 1
    new_types += helper_types
    f_get = imported_funcs + len(func_types)
    f_reset = f_get + 1
    gi = _leb(g)
    for code in (b"\x00\x23" + gi + b"\x0b", b"\x00\x41\x00\x24" + gi + b"\x0b"):
        bodies.append(_leb(len(code)) + code)
    func_types += [t_get, t_reset]

    def extend_vec(payload: bytes | None, items: list[bytes]) -> bytes:
        if payload is None:
            return _vec(items)
        t = _R(payload)
        count = t.leb()
        return _leb(count + len(items)) + payload[t.p :] + b"".join(items)

    replaced = {
        1: extend_vec(by_id.get(1), new_types),
        3: _vec([_leb(x) for x in func_types]),
        6: extend_vec(by_id.get(6), [b"\x7f\x01\x41\x00\x0b"]),  # (mut i32) (i32.const 0)
        7: extend_vec(
            by_id.get(7),
            [
                _name(DEPTH_EXPORT) + b"\x00" + _leb(f_get),
                _name(RESET_EXPORT) + b"\x00" + _leb(f_reset),
            ],
        ),
        10: _vec(bodies),
    }
    out = bytearray(wasm[:8])
    pending = dict(replaced)
    for sid, payload in sections:
        if sid != 0:
            for nid in sorted(pending, key=lambda k: _ORDER[k]):
                if _ORDER[nid] < _ORDER[sid]:
                    out += _section(nid, pending.pop(nid))
        if sid in replaced:
            if sid in pending:
                out += _section(sid, pending.pop(sid))
            continue
        out += _section(sid, payload)
    for nid in sorted(pending, key=lambda k: _ORDER[k]):
        out += _section(nid, pending[nid])
    return bytes(out)


def _name(text: str) -> bytes:
    raw = text.encode()
    return _leb(len(raw)) + raw
