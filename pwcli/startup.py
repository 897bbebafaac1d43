"""Start-up: what pwcli does so that ``pwcli replay`` starts fast.

pydantic looks for plugins (entry points of every installed distribution) when it builds its first
model: tens of milliseconds in a large environment, spent on every start. pwcli's own models (the
trace, its expectations) are built while the package is imported, with pydantic's documented
switch ``PYDANTIC_DISABLE_PLUGINS`` set for that moment only; a program's own models, built later,
get its pydantic plugins as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_SWITCH = "PYDANTIC_DISABLE_PLUGINS"


@contextmanager
def own_models() -> Iterator[None]:
    """While pwcli builds its pydantic models: no plugin lookup (unless the user set the switch)."""
    saved = os.environ.get(_SWITCH)
    if saved is None:
        os.environ[_SWITCH] = "__all__"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(_SWITCH, None)
