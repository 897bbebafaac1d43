"""The replay engine: a plugin VM driven by packets on a virtual clock, as Envoy drives a filter.

``Session`` feeds it incrementally; ``replay()`` is a loop of ``Session.send`` over a trace.
"""

from .options import LEVELS, ReplayOptions
from .replay import packets_of, replay
from .run import Run
from .session import Session

__all__ = ["LEVELS", "ReplayOptions", "Run", "Session", "packets_of", "replay"]
