"""Pure-Python unit tests: the pairs format, property paths and integers (pwcli.host.codec)."""

from __future__ import annotations

import pytest

from pwcli.host.codec import (
    PAIRS_MAX_BYTES,
    PAIRS_MAX_COUNT,
    decode_pairs,
    encode_pairs,
    i64,
    split_path,
    u32,
    u64,
)

from .guest import pairs


def test_encode_matches_the_abi_example() -> None:
    # the pairs format: {a: "1", b: "22"}
    assert encode_pairs([(b"a", b"1"), (b"b", b"22")]) == bytes.fromhex(
        "02000000" "01000000" "01000000" "01000000" "02000000" "61003100" "6200323200")


def test_encode_empty_is_empty() -> None:
    assert encode_pairs([]) == b""


@pytest.mark.parametrize("items", [
    [(b"a", b"1")],
    [(b"", b""), (b"k", b"")],
    [(b":status", b"200"), (b"x", b"\xff\x00binary")],
    [(b"dup", b"1"), (b"dup", b"2")],
])
def test_round_trip(items: list[tuple[bytes, bytes]]) -> None:
    data = encode_pairs(items)
    assert data == pairs(*items)
    assert decode_pairs(data) == items


@pytest.mark.parametrize("empty", [b"", b"\0", b"\0\0\0\0"])
def test_empty_maps(empty: bytes) -> None:
    assert decode_pairs(empty) == []


@pytest.mark.parametrize("bad", [
    b"\x01\0\0",  # short count
    b"\x01\0\0\0",  # no lengths
    pairs(("a", "b"))[:-1],  # missing last NUL
    u32(1) + u32(1) + u32(1) + b"ab\0\0",  # no NUL after the name
    u32(1) + u32(5) + u32(0) + b"ab\0\0",  # lengths beyond the data
    u32(PAIRS_MAX_COUNT + 1) + b"\0" * 8 * (PAIRS_MAX_COUNT + 1) + b"\0\0" * (PAIRS_MAX_COUNT + 1),
    u32(1) + u32(PAIRS_MAX_BYTES) + u32(0) + b"a" * PAIRS_MAX_BYTES + b"\0\0",  # over 1 MiB
])
def test_malformed_decodes_to_none(bad: bytes) -> None:
    assert decode_pairs(bad) is None


def test_limits_are_inclusive() -> None:
    items = [(b"", b"")] * PAIRS_MAX_COUNT
    assert decode_pairs(encode_pairs(items)) == items


def test_trailing_bytes_are_ignored() -> None:
    assert decode_pairs(pairs(("a", "b")) + b"junk") == [(b"a", b"b")]


def test_split_path() -> None:
    assert split_path(b"source\0address") == ("source", "address")
    assert split_path(b"source\0address\0") == ("source", "address")  # C++ SDK's trailing NUL
    assert split_path(b"plugin_root_id") == ("plugin_root_id",)
    assert split_path(b"a\0\0") == ("a", "")  # only one trailing NUL is dropped
    assert split_path(b"") == ("",)


def test_integers() -> None:
    assert u32(0xFFFFFFFF) == b"\xff\xff\xff\xff" and u32(-1) == b"\xff\xff\xff\xff"
    assert u32(1 << 32) == b"\0\0\0\0"
    assert u64(5) == b"\x05" + b"\0" * 7
    assert i64(-2) == b"\xfe" + b"\xff" * 7
