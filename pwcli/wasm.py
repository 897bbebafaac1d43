"""A small reader of the WebAssembly binary format: what a module imports, exports and declares.

Enough to check a plugin the way proxy-wasm-cpp-host does before it runs (ABI marker, callback
signatures, imports) and for ``pwcli inspect``. Pure Python, no engine needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import PluginLoadError

MAGIC = b"\0asm"
CORE_VERSION = b"\x01\x00\x00\x00"

VALTYPES = {
    0x7F: "i32",
    0x7E: "i64",
    0x7D: "f32",
    0x7C: "f64",
    0x7B: "v128",
    0x70: "funcref",
    0x6F: "externref",
}
EXTERN_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
SECTION_NAMES = {
    0: "custom",
    1: "type",
    2: "import",
    3: "function",
    4: "table",
    5: "memory",
    6: "global",
    7: "export",
    8: "start",
    9: "element",
    10: "code",
    11: "data",
    12: "datacount",
    13: "tag",
}


@dataclass(frozen=True)
class FuncType:
    params: tuple[str, ...]
    results: tuple[str, ...]

    def __str__(self) -> str:
        return f"({' '.join(self.params)}) -> ({' '.join(self.results)})"


@dataclass(frozen=True)
class Limits:
    minimum: int
    maximum: int | None
    shared: bool = False
    memory64: bool = False


@dataclass(frozen=True)
class Import:
    module: str
    name: str
    kind: str
    type: FuncType | None = None
    limits: Limits | None = None


@dataclass(frozen=True)
class Export:
    name: str
    kind: str
    index: int
    type: FuncType | None = None


@dataclass
class ModuleInfo:
    size: int
    imports: list[Import] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    memories: list[Limits] = field(default_factory=list)
    custom: list[tuple[str, bytes]] = field(default_factory=list)
    function_names: dict[int, str] = field(default_factory=dict)
    has_start_section: bool = False
    module_name: str | None = None
    producers: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def export(self, name: str) -> Export | None:
        for exp in self.exports:
            if exp.name == name:
                return exp
        return None

    def func_export(self, name: str) -> FuncType | None:
        exp = self.export(name)
        return exp.type if exp is not None and exp.kind == "func" else None

    @property
    def memory_limits(self) -> Limits | None:
        for imp in self.imports:
            if imp.kind == "memory":
                return imp.limits
        return self.memories[0] if self.memories else None


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise _Truncated(self.pos)
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u32(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 35:
                raise _Malformed(self.pos, "integer representation too long")

    def bytes(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise _Truncated(self.pos)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def name(self) -> str:
        raw = self.bytes(self.u32())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed(self.pos, "name is not UTF-8") from None

    def valtype(self) -> str:
        b = self.byte()
        if b in VALTYPES:
            return VALTYPES[b]
        if b in (0x63, 0x64):  # (ref null? heaptype)
            self.s33()
            return "ref"
        raise _Malformed(self.pos - 1, f"unknown value type 0x{b:02x}")

    def s33(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def limits(self) -> Limits:
        flags = self.byte()
        minimum = self.u64()
        maximum = self.u64() if flags & 1 else None
        if flags & 0x08:  # custom page size
            self.u32()
        return Limits(minimum, maximum, bool(flags & 2), bool(flags & 4))

    def u64(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7


class _Truncated(Exception):
    def __init__(self, pos: int) -> None:
        self.pos = pos


class _Malformed(Exception):
    def __init__(self, pos: int, why: str) -> None:
        self.pos = pos
        self.why = why


def parse_module(data: bytes, *, source: str = "<wasm>") -> ModuleInfo:
    """Read a core wasm module's interface. Raises PluginLoadError with one clear line."""
    if not data:
        raise PluginLoadError(f"{source}: empty file, not a WebAssembly module")
    if len(data) < 8 or data[:4] != MAGIC:
        if data[:4] == MAGIC[: len(data[:4])] and len(data) < 8:
            raise PluginLoadError(f"{source}: truncated wasm module ({len(data)} bytes)")
        raise PluginLoadError(f"{source}: not a WebAssembly module (no \\0asm magic number)")
    version = data[4:8]
    if version != CORE_VERSION:
        if version[2:4] == b"\x01\x00":
            raise PluginLoadError(
                f"{source}: a WebAssembly component, not a core module: proxy-wasm plugins are "
                "core modules (build for wasm32-wasip1 / wasm32-unknown-unknown)"
            )
        raise PluginLoadError(f"{source}: unsupported wasm binary version {version.hex()}")
    try:
        return _parse_sections(data)
    except _Truncated as exc:
        raise PluginLoadError(f"{source}: truncated wasm module (ends inside byte {exc.pos})")
    except _Malformed as exc:
        raise PluginLoadError(f"{source}: malformed wasm module at byte {exc.pos}: {exc.why}")


def _parse_sections(data: bytes) -> ModuleInfo:
    info = ModuleInfo(size=len(data))
    types: list[FuncType | None] = []
    func_types: list[int] = []
    imported_funcs = 0
    r = _Reader(data, 8)
    while r.pos < r.end:
        sid = r.byte()
        size = r.u32()
        if r.pos + size > r.end:
            raise _Truncated(r.end)
        s = _Reader(data, r.pos, r.pos + size)
        r.pos += size
        if sid == 0:
            name = s.name()
            payload = data[s.pos : s.end]
            info.custom.append((name, payload))
            if name == "name":
                info.function_names = _function_names(payload)
                info.module_name = _module_name(payload)
            elif name == "producers":
                info.producers = _producers(payload)
        elif sid == 1:
            types = _types(s)
        elif sid == 2:
            for _ in range(s.u32()):
                module, name, kind = s.name(), s.name(), s.byte()
                if kind == 0:
                    idx = s.u32()
                    ftype = types[idx] if idx < len(types) else None
                    info.imports.append(Import(module, name, "func", type=ftype))
                    func_types.append(idx)
                    imported_funcs += 1
                elif kind == 1:
                    s.valtype()
                    info.imports.append(Import(module, name, "table", limits=s.limits()))
                elif kind == 2:
                    info.imports.append(Import(module, name, "memory", limits=s.limits()))
                elif kind == 3:
                    s.valtype()
                    s.byte()
                    info.imports.append(Import(module, name, "global"))
                elif kind == 4:
                    s.byte()
                    s.u32()
                    info.imports.append(Import(module, name, "tag"))
                else:
                    raise _Malformed(s.pos - 1, f"unknown import kind {kind}")
        elif sid == 3:
            func_types.extend(s.u32() for _ in range(s.u32()))
        elif sid == 5:
            info.memories.extend(s.limits() for _ in range(s.u32()))
        elif sid == 7:
            for _ in range(s.u32()):
                name, kind, index = s.name(), s.byte(), s.u32()
                kname = EXTERN_KINDS.get(kind)
                if kname is None:
                    raise _Malformed(s.pos, f"unknown export kind {kind}")
                ftype = None
                if kname == "func" and index < len(func_types) and func_types[index] < len(types):
                    ftype = types[func_types[index]]
                info.exports.append(Export(name, kname, index, ftype))
        elif sid == 8:
            info.has_start_section = True
    return info


def _types(s: _Reader) -> list[FuncType | None]:
    out: list[FuncType | None] = []
    for _ in range(s.u32()):
        form = s.byte()
        if form == 0x4E:  # rec group (GC proposal): not used by proxy-wasm plugins
            raise _Malformed(s.pos - 1, "GC type groups are not supported")
        if form != 0x60:
            raise _Malformed(s.pos - 1, f"unknown type form 0x{form:02x}")
        params = tuple(s.valtype() for _ in range(s.u32()))
        results = tuple(s.valtype() for _ in range(s.u32()))
        out.append(FuncType(params, results))
    return out


def _function_names(payload: bytes) -> dict[int, str]:
    names: dict[int, str] = {}
    r = _Reader(payload)
    try:
        while r.pos < r.end:
            sub, size = r.byte(), r.u32()
            end = r.pos + size
            if sub == 1:
                for _ in range(r.u32()):
                    idx = r.u32()
                    names[idx] = r.bytes(r.u32()).decode("utf-8", "replace")
            r.pos = end
    except (_Truncated, _Malformed):
        pass
    return names



def _module_name(payload: bytes) -> str | None:
    """The name section's module name (subsection 0), if any."""
    r = _Reader(payload)
    try:
        while r.pos < r.end:
            sub, size = r.byte(), r.u32()
            end = r.pos + size
            if sub == 0:
                return r.bytes(r.u32()).decode("utf-8", "replace")
            r.pos = end
    except (_Truncated, _Malformed):
        pass
    return None


def _producers(payload: bytes) -> dict[str, list[tuple[str, str]]]:
    """The tool-conventions ``producers`` section: field (language, processed-by, sdk) ->
    [(name, version)]. A malformed section yields what was read before the damage."""
    out: dict[str, list[tuple[str, str]]] = {}
    r = _Reader(payload)
    try:
        for _ in range(r.u32()):
            fname = r.bytes(r.u32()).decode("utf-8", "replace")
            values = out.setdefault(fname, [])
            for _ in range(r.u32()):
                name = r.bytes(r.u32()).decode("utf-8", "replace")
                version = r.bytes(r.u32()).decode("utf-8", "replace")
                values.append((name, version))
    except (_Truncated, _Malformed):
        pass
    return out
