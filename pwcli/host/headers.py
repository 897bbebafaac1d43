"""HeaderMap: an ordered multimap with Envoy's rules.

Names are stored lower-case; ``get`` returns the first value; ``add`` appends; ``replace`` removes
every match and appends; ``remove`` removes every match; ``set_pairs`` replaces everything.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..textutil import text as _text
from .codec import Pairs


class HeaderMap:
    __slots__ = ("pairs",)

    def __init__(self, pairs: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self.pairs: Pairs = [(n.lower(), v) for n, v in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, name: bytes) -> bytes | None:
        name = name.lower()
        for n, v in self.pairs:
            if n == name:
                return v
        return None

    def add(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name.lower(), value))

    def replace(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self.pairs = [(n, v) for n, v in self.pairs if n != name]
        self.pairs.append((name, value))

    def remove(self, name: bytes) -> bool:
        name = name.lower()
        before = len(self.pairs)
        self.pairs = [(n, v) for n, v in self.pairs if n != name]
        return len(self.pairs) != before

    def set_pairs(self, pairs: Pairs) -> None:
        self.pairs = [(n.lower(), v) for n, v in pairs]

    def byte_size(self) -> int:
        """Envoy's ``byteSize()``: the sum of every name's and value's length."""
        return sum(len(n) + len(v) for n, v in self.pairs)

    def as_text(self) -> list[list[str]]:
        return [[_text(n), _text(v)] for n, v in self.pairs]
