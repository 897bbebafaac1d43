"""What a host call asks the proxy to do once the running callback returns, as typed values.

A host function never drives the replay itself: it records an effect on ``Host.effects`` and the
engine applies the effects after the callback (``pwcli.engine.effects``). This is also how Envoy
works: ``continueStream``, ``sendLocalReply``, timers and callouts are posted to the dispatcher and
act after the wasm call returns (Envoy's ``source/extensions/common/wasm/context.cc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..events import LocalReply
    from .contexts import StreamContext
    from .host import Callout


@dataclass(frozen=True, slots=True)
class TickPeriodSet:
    """proxy_set_tick_period_milliseconds: (re)arm the root context's timer from now."""

    period_ms: int


@dataclass(frozen=True, slots=True)
class CalloutStarted:
    """proxy_http_call / proxy_grpc_call / proxy_grpc_stream: schedule the call's answer."""

    call: Callout


@dataclass(frozen=True, slots=True)
class QueueReady:
    """proxy_enqueue_shared_queue on a queue this VM registered: proxy_on_queue_ready follows."""

    queue_id: int


@dataclass(frozen=True, slots=True)
class StreamResumed:
    """proxy_continue_stream / proxy_continue_request / proxy_continue_response."""

    stream: StreamContext
    stream_type: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """proxy_close_stream: reset the stream (HTTP) or close the connection (TCP)."""

    stream: StreamContext
    stream_type: int


@dataclass(frozen=True, slots=True)
class LocalReplySent:
    """proxy_send_local_response: Envoy sends the reply after the callback returns."""

    stream: StreamContext
    reply: LocalReply


Effect = (TickPeriodSet | CalloutStarted | QueueReady | StreamResumed
          | StreamClosed | LocalReplySent)
