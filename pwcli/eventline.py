"""One event as a JSON record (the report's timeline) and as a JSON Lines line (``--format jsonl``).

A line is ``json.dumps(event_record(ev), sort_keys=True, ensure_ascii=False, separators=(",",
":"))``, byte for byte. It is made with orjson, which writes the same text for strings, ints within
64 bits, booleans, null, lists and objects with text keys, and writes other floats than Python does
(``0.00001`` for ``1e-05``): a record holding a float or anything else orjson does not take is
encoded by the standard library instead. ``t_ms`` (the only float an event usually has) is written
by Python and placed last, where sorting puts it. ``tests/test_eventline.py`` holds the two
encodings to the same text over generated records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from .events import Event


def t_ms(ns: int) -> int | float:
    """Virtual time in ms: an int when whole, else rounded to the nanosecond."""
    if ns % 1_000_000 == 0:
        return ns // 1_000_000
    return round(ns / 1_000_000, 6)


def event_json(ev: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"t_ms": t_ms(ev.t_ns), "ctx": ev.ctx, "kind": ev.kind, "name": ev.name}
    if ev.args:
        out["args"] = ev.args
    if ev.result is not None:
        out["result"] = ev.result
    return out


def event_record(ev: Event) -> dict[str, Any]:
    """An event with the stream it belongs to (None: the VM's), as the run's timeline shows it."""
    rec = event_json(ev)
    rec["stream"] = ev.stream
    return rec


def _stdlib_encoder() -> Callable[[Any], str]:
    """json.dumps(o, sort_keys=True, ensure_ascii=False, separators=(",", ":")), made once.

    json.dumps with options builds an encoder on every call, and JSONEncoder.encode its C
    encoder on every call too: this keeps one C encoder (the stdlib's own, as JSONEncoder makes
    it) when the interpreter has it."""
    from json import encoder

    enc = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    make = getattr(encoder, "c_make_encoder", None)  # None without the C accelerator
    if make is None:
        return enc.encode
    # No circular check (event records are trees): nothing is kept between calls.
    chunks = make(None, enc.default, encoder.encode_basestring, None, ":", ",", True, False, True)
    join = "".join

    def line(o: Any) -> str:
        return join(chunks(o, 0))

    return line


dumps = _stdlib_encoder()


def _plain(v: Any) -> bool:
    """True when orjson writes ``v`` as the standard library does: no floats, no big ints."""
    if isinstance(v, str) or v is None or isinstance(v, bool):
        return True
    if isinstance(v, int):
        return -(1 << 63) <= v < (1 << 64)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    if isinstance(v, list):
        return all(_plain(x) for x in v)
    return False  # floats, tuples and anything else: the standard library


def event_line(ev: Event) -> str:
    """One JSON Lines record per event, for ``--format jsonl``."""
    rec = event_record(ev)
    if _plain(ev.args) and _plain(ev.result):
        t = rec.pop("t_ms")  # sorts last of the record's keys: written after the rest
        try:
            head = orjson.dumps(rec, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:  # text orjson refuses (a lone surrogate)
            rec["t_ms"] = t
        else:
            return f'{head[:-1]},"t_ms":{t!r}}}'
    return dumps(rec)
