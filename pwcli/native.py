"""Which compiled parts pwcli runs with, and the switch back to pure Python.

pwcli is pure Python. Built where a C compiler is (``pip install`` runs setup.py), it also gets
compiled copies of its hot path: the Wasmtime crossings in C (``pwcli/runtimes/_crossing.c``) and
the host and engine modules compiled by mypyc from the very same ``.py`` files, so the rules exist
once. ``PWCLI_PURE=1`` runs the ``.py`` files and the ctypes crossing even where the compiled ones
are installed; reports are the same either way (CI runs the suite both ways).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType

PURE = os.environ.get("PWCLI_PURE", "") not in ("", "0")


def module(name: str) -> ModuleType | None:
    """The compiled module ``name``, or None when it is not built or PWCLI_PURE is set."""
    if PURE:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _is_compiled(mod: ModuleType) -> bool:
    spec = getattr(mod, "__spec__", None)
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def compiled() -> list[str]:
    """The pwcli modules this process runs compiled (loaded from extension modules)."""
    return sorted(name for name, mod in list(sys.modules.items())
                  if name.startswith("pwcli.") and _is_compiled(mod))


def describe() -> str:
    """Which hot path runs, in a few words (``pwcli runtimes`` shows it)."""
    if PURE:
        return "pure-Python hot path (PWCLI_PURE is set)"
    crossing = module("pwcli.runtimes._crossing") is not None
    import pwcli.host.host as host  # a module of the hot path, loaded for any replay anyway

    mypyc = _is_compiled(host)
    if crossing and mypyc:
        return "compiled hot path (C crossing; host and engine built by mypyc)"
    if crossing or mypyc:
        part = "C crossing" if crossing else "host and engine built by mypyc"
        return f"partly compiled hot path ({part})"
    return "pure-Python hot path (pwcli was installed without its compiled parts)"


class _SourceFirst:
    """Under PWCLI_PURE: a pwcli module is loaded from its .py file, never its compiled twin
    (a meta path finder; the .py and its compiled twin sit side by side)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("pwcli.") or path is None:
            return None
        from importlib.util import spec_from_file_location

        leaf = fullname.rpartition(".")[2]
        for entry in path:
            base = os.path.join(entry, leaf)
            if os.path.isfile(base + ".py"):
                return spec_from_file_location(fullname, base + ".py")
            init = os.path.join(base, "__init__.py")
            if os.path.isfile(init):
                return spec_from_file_location(fullname, init, submodule_search_locations=[base])
        return None


if PURE and not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
    sys.meta_path.insert(0, _SourceFirst())
