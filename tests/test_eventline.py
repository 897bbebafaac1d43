"""A JSON Lines line is json.dumps of the event's record, byte for byte, whichever encoder made it."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pwcli.eventline import event_line, event_record
from pwcli.events import Event

scalars = (st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.text(max_size=12)
           | st.floats(allow_nan=False, allow_infinity=False))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
events = st.builds(
    Event, t_ns=st.integers(0, 10**15), ctx=st.integers(0, 1 << 32),
    stream=st.none() | st.integers(0, 10**6), kind=st.sampled_from(["hostcall", "log", "note"]),
    name=st.text(max_size=20), args=st.dictionaries(st.text(max_size=8), values, max_size=4),
    result=st.none() | values)


def _stdlib(ev: Event) -> str:
    return json.dumps(event_record(ev), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@settings(max_examples=400, deadline=None)
@given(events)
def test_a_line_is_the_records_json(ev: Event) -> None:
    assert event_line(ev) == _stdlib(ev)


def test_the_edges_of_each_encoder() -> None:
    cases: list[tuple[int, dict[str, Any], Any]] = [
        (1_500_000, {"message": "a\x01\n\t\"\\é\u2028\x7f"}, None),  # fraction of a ms, escapes
        (10, {"n": 1e-05, "big": 1 << 64}, {"status": "OK", "value": -(1 << 63)}),  # stdlib's
        (0, {}, {"status": "OK", "value": "\ud800"}),  # a lone surrogate: orjson refuses it
        (3_000_000, {"pairs": [["a", "b"]], "t": True}, [1, None]),
    ]
    for t_ns, args, result in cases:
        ev = Event(t_ns, 1, None, "hostcall", "proxy_x", args, result)
        assert event_line(ev) == _stdlib(ev)
    assert event_line(Event(1_500_000, 2, 3, "log", "info", {"message": "hi"})) == (
        '{"args":{"message":"hi"},"ctx":2,"kind":"log","name":"info","stream":3,"t_ms":1.5}')
