"""Pure-Python unit tests for HeaderMap: Envoy's header-map rules."""

from __future__ import annotations

from pwcli.host.headers import HeaderMap


def hm() -> HeaderMap:
    return HeaderMap([(b"A", b"1"), (b"b", b"2"), (b"a", b"3")])


def test_names_are_stored_lower_case() -> None:
    assert hm().pairs == [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]
    assert len(hm()) == 3


def test_get_first_match_case_insensitive() -> None:
    m = hm()
    assert m.get(b"A") == b"1" and m.get(b"a") == b"1" and m.get(b"c") is None


def test_add_appends_duplicates() -> None:
    m = hm()
    m.add(b"B", b"4")
    assert m.pairs[-1] == (b"b", b"4") and len(m) == 4


def test_replace_removes_all_and_appends() -> None:
    m = hm()
    m.replace(b"A", b"new")
    assert m.pairs == [(b"b", b"2"), (b"a", b"new")]
    m.replace(b"c", b"x")
    assert m.pairs[-1] == (b"c", b"x")


def test_remove_every_match() -> None:
    m = hm()
    assert m.remove(b"A") is True
    assert m.pairs == [(b"b", b"2")]
    assert m.remove(b"zzz") is False


def test_set_pairs_and_byte_size() -> None:
    m = hm()
    m.set_pairs([(b"X-Y", b"z"), (b":status", b"200")])
    assert m.pairs == [(b"x-y", b"z"), (b":status", b"200")]
    assert m.byte_size() == 3 + 1 + 7 + 3
    assert HeaderMap().byte_size() == 0


def test_values_keep_their_case_and_bytes() -> None:
    m = HeaderMap([(b"k", b"MiXeD\xff")])
    assert m.get(b"K") == b"MiXeD\xff"
    assert m.as_text() == [["k", "MiXeD\\xff"]]
