"""The schema of the expectations a trace may carry: what a packet, a stream or the run must show.

A packet's ``expect`` checks the state of its stream right after the packet was delivered
(headers and bodies as they stand, what happened since the previous packet).
``Trace.expect.streams`` checks a whole stream, named by the index of the packet that opens it
(final headers and bodies, everything it logged). The other keys of ``Trace.expect`` check the run
as a whole. Shorthands (a header as ``"value"``, ``true``, ``false`` or ``{"regex": ...}``) are
normalized by before-validators, so a bad expectation is a trace error with the usual one-line
message, and ``pwcli schema`` shows the shorthands through ``WithJsonSchema``.

The checks themselves are in ``pwcli.expect``.
"""

from __future__ import annotations

import base64
import difflib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

ACTIONS = ("continue", "pause", "stop_iteration", "continue_and_end_stream",
           "stop_all_iteration_and_buffer", "stop_all_iteration_and_watermark",
           "stop_iteration_and_buffer", "stop_iteration_and_watermark", "stop_iteration_no_buffer")
CALLBACKS = ("request_headers", "request_body", "request_trailers", "response_headers",
             "response_body", "response_trailers", "new_connection", "downstream_data",
             "upstream_data")


def _err(kind: str, msg: str, **ctx: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, msg, ctx)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise _err("object", "must be an object")
        known = set(cls.model_fields)
        for key in data:
            if key not in known:
                near = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise _err("unknown", "unknown key {k}{h}", k=json.dumps(key), h=hint)
        return data


def _regex(v: Any) -> str:
    if not isinstance(v, str):
        raise _err("regex", "regex: must be a string")
    try:
        re.compile(v)
    except re.error as exc:
        raise _err("regex", "invalid regular expression {r}: {e}", r=json.dumps(v),
                   e=str(exc)) from None
    return v


Regex = Annotated[str, BeforeValidator(_regex)]


class Value(_Model):
    """Normalized check of one header, body or message: equal, present/absent, or a regex search."""

    equals: list[str] | None = None
    present: bool | None = None
    regex: Regex | None = None


REGEX_FORM = '{"regex": "..."}'


def _header_value(v: Any) -> Any:
    if isinstance(v, bool):
        return {"present": v}
    if isinstance(v, str):
        return {"equals": [v]}
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return {"equals": v}
    if isinstance(v, dict) and set(v) == {"regex"}:
        return {"regex": _regex(v["regex"])}
    raise _err("header", 'expected "value", ["value", ...], true (present), false (absent) '
               "or {r}", r=REGEX_FORM)


def _body_value(v: Any) -> Any:
    if isinstance(v, str):
        return {"equals": [v]}
    if isinstance(v, dict) and set(v) == {"base64"} and isinstance(v["base64"], str):
        try:
            raw = base64.b64decode(v["base64"], validate=True)
        except ValueError:
            raise _err("base64", "base64: not valid base64") from None
        return {"equals": [raw.decode("utf-8", "backslashreplace")]}
    if isinstance(v, dict) and set(v) == {"regex"}:
        return {"regex": _regex(v["regex"])}
    raise _err("body", "expected \"text\", {b} or {r}", b='{"base64": "..."}', r=REGEX_FORM)


_STR_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_REGEX = {"type": "object", "properties": {"regex": {"type": "string"}}, "required": ["regex"],
          "additionalProperties": False}
_B64 = {"type": "object", "properties": {"base64": {"type": "string"}}, "required": ["base64"],
        "additionalProperties": False}
HeaderValue = Annotated[Value, BeforeValidator(_header_value), WithJsonSchema(
    {"anyOf": [{"type": "string"}, _STR_LIST, {"type": "boolean"}, _REGEX]})]
BodyValue = Annotated[Value, BeforeValidator(_body_value), WithJsonSchema(
    {"anyOf": [{"type": "string"}, _B64, _REGEX]})]


def _header_names(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k).lower(): x for k, x in v.items()}
    raise _err("headers", "must be an object of header name -> expected value")


Headers = Annotated[dict[str, HeaderValue], BeforeValidator(_header_names)]


class MessageExpect(_Model):
    """The request or the response: headers by name, the whole ordered list, body, trailers."""

    headers: Headers | None = None
    header_list: list[tuple[str, str]] | None = None
    body: BodyValue | None = None
    trailers: Headers | None = None


class LocalReplyExpect(_Model):
    """The plugin's local reply (``false``: none)."""

    absent: SkipJsonSchema[bool] = False
    status: int | None = None
    details: str | None = None
    body: BodyValue | None = None
    headers: Headers | None = None


class FailureExpect(_Model):
    """A failure of canonical ``kind`` (in ``callback``) (``false``: none)."""

    absent: SkipJsonSchema[bool] = False
    kind: str | None = None
    callback: str | None = None


def _or_false(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return v
    if v is False:
        return {"absent": True}
    if isinstance(v, dict) and "absent" not in v:
        return v
    raise _err("object_or_false", "must be an object or false (none)")


def _schema_or_false(model: type[BaseModel]) -> WithJsonSchema:
    schema = model.model_json_schema()
    assert "$defs" not in schema, "bug in pwcli: inline schema with definitions"
    return WithJsonSchema({"anyOf": [schema, {"const": False}]})


LocalReplyValue = Annotated[LocalReplyExpect, BeforeValidator(_or_false),
                            _schema_or_false(LocalReplyExpect)]
FailureValue = Annotated[FailureExpect, BeforeValidator(_or_false),
                         _schema_or_false(FailureExpect)]


class LogExpect(_Model):
    """Log lines matching ``regex`` (a search) at ``level``: at least one, or exactly ``count``."""

    regex: Regex
    level: Literal["trace", "debug", "info", "warn", "error", "critical"] | None = None
    count: int | None = Field(default=None, ge=0)


class ActionCheck(_Model):
    """Normalized: ``every`` call of the callback ended so, or the exact ``sequence``."""

    every: str | None = None
    sequence: list[str] | None = None


def _actions(v: Any) -> Any:
    if not isinstance(v, dict):
        raise _err("actions", "must be an object of callback -> action")
    out: dict[str, dict[str, Any]] = {}
    for key, value in v.items():
        name = str(key).removeprefix("proxy_on_")
        if name not in CALLBACKS:
            raise _err("callback", "unknown callback {k} (one of: {c})", k=json.dumps(key),
                       c=", ".join(CALLBACKS))
        seq = value if isinstance(value, list) else [value]
        if not seq or any(a not in ACTIONS for a in seq):
            raise _err("action", "{k}: expected an action or a list of actions among: {a}",
                       k=key, a=", ".join(ACTIONS))
        out[name] = {"sequence": seq} if isinstance(value, list) else {"every": value}
    return out


_ACTION = {"enum": list(ACTIONS)}
Actions = Annotated[dict[str, ActionCheck], BeforeValidator(_actions), WithJsonSchema(
    {"type": "object",
     "propertyNames": {"enum": list(CALLBACKS) + [f"proxy_on_{c}" for c in CALLBACKS]},
     "additionalProperties": {"anyOf": [_ACTION, {"type": "array",
                                                                   "items": _ACTION}]}})]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _metric(v: Any) -> Any:
    if not (_is_int(v) or (isinstance(v, list) and all(_is_int(x) for x in v))):
        raise _err("metric", "expected a value (integer) or histogram samples (list of integers)")
    return v


Metric = Annotated[int | list[int], BeforeValidator(_metric)]


class HttpCallExpect(_Model):
    """proxy_http_call calls to ``upstream``: at least one matching, or exactly ``count``."""

    upstream: str
    headers: Headers | None = None
    body: BodyValue | None = None
    count: int | None = Field(default=None, ge=0)


class StreamExpect(_Model):
    """Checks of one stream: after one packet (``Packet.expect``) or at its end."""

    request: MessageExpect | None = None
    response: MessageExpect | None = None
    local_reply: LocalReplyValue | None = None
    logs: list[LogExpect] | None = None
    actions: Actions | None = None
    http_calls: list[HttpCallExpect] | None = None
    metrics: dict[str, Metric] | None = None
    failure: FailureValue | None = None


class TraceExpect(_Model):
    """``Trace.expect``: per stream (keyed by the index of its opening packet) and run-wide."""

    streams: dict[int, StreamExpect] | None = None
    logs: list[LogExpect] | None = None
    http_calls: list[HttpCallExpect] | None = None
    metrics: dict[str, Metric] | None = None
    failure: FailureValue | None = None
