"""``--filter``: which connections of a capture to keep, in capture filter words.

The words of tcpdump's filters that name addresses: ``host H``, ``net CIDR``, ``port N``,
``portrange A-B``, each optionally after ``src`` or ``dst``; ``tcp``, ``ip``, ``ip6``; joined with
``and``/``&&``, ``or``/``||``, ``not``/``!`` and parentheses. Unlike a packet filter, the filter
keeps whole connections: a connection is kept when a packet of it in either direction matches
(``src host 10.0.0.2`` keeps that client's connections, answers included), so each stream stays
whole.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable

Endpoint = tuple[str, int]
Test = Callable[[Endpoint, Endpoint], bool]
TOKEN = re.compile(r"\s*(\(|\)|&&|\|\||!|[^\s()!]+)")
_ip = functools.lru_cache(maxsize=4096)(ipaddress.ip_address)


class FilterError(ValueError):
    pass


def compile_filter(text: str) -> Callable[[Endpoint, Endpoint], bool]:
    """A function of a segment's (source, destination) that keeps its whole connection."""
    tokens = [m.group(1) for m in TOKEN.finditer(text)]
    if not tokens:
        raise FilterError("empty filter")
    parser = _Parser(tokens)
    test = parser.expr()
    if parser.pos < len(tokens):
        raise FilterError(f"unexpected {tokens[parser.pos]!r}")
    return lambda src, dst: test(src, dst) or test(dst, src)


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos].lower() if self.pos < len(self.tokens) else None

    def take(self, what: str) -> str:
        if self.pos >= len(self.tokens):
            raise FilterError(f"{what} expected at the end")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expr(self) -> Test:
        left = self.term()
        while self.peek() in ("or", "||"):
            self.pos += 1
            right = self.term()
            left = (lambda a, b: lambda s, d: a(s, d) or b(s, d))(left, right)
        return left

    def term(self) -> Test:
        left = self.factor()
        while self.peek() in ("and", "&&"):
            self.pos += 1
            right = self.factor()
            left = (lambda a, b: lambda s, d: a(s, d) and b(s, d))(left, right)
        return left

    def factor(self) -> Test:
        word = self.peek()
        if word in ("not", "!"):
            self.pos += 1
            inner = self.factor()
            return lambda s, d: not inner(s, d)
        if word == "(":
            self.pos += 1
            inner = self.expr()
            if self.take("')'") != ")":
                raise FilterError("')' expected")
            return inner
        return self.primitive()

    def primitive(self) -> Test:
        word = self.take("a filter word").lower()
        if word == "tcp":
            return lambda s, d: True
        if word in ("ip", "ip6"):
            v6 = word == "ip6"
            return lambda s, d: (":" in s[0]) == v6
        side = None
        if word in ("src", "dst"):
            side, word = word, self.take("host, net, port or portrange").lower()
        value = self.take(f"a value after {word!r}")
        match: Callable[[Endpoint], bool]
        if word == "host":
            addr = _address(value)
            match = lambda e: _same(e[0], addr)  # noqa: E731
        elif word == "net":
            net = _network(value)
            match = lambda e: _in(e[0], net)  # noqa: E731
        elif word == "port":
            port = _port(value)
            match = lambda e: e[1] == port  # noqa: E731
        elif word == "portrange":
            lo, _, hi = value.partition("-")
            first, last = _port(lo), _port(hi or lo)
            match = lambda e: first <= e[1] <= last  # noqa: E731
        else:
            raise FilterError(f"unknown word {word!r} (host, net, port, portrange, src, dst, "
                              "tcp, ip, ip6, and, or, not)")
        if side == "src":
            return lambda s, d: match(s)
        if side == "dst":
            return lambda s, d: match(d)
        return lambda s, d: match(s) or match(d)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise FilterError(f"not an IP address: {text!r}") from None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise FilterError(f"not a network: {text!r}") from None


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise FilterError(f"not a port: {text!r}")
    return int(text)


def _same(ip: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return _ip(ip) == addr


def _in(ip: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return _ip(ip) in net
