"""Builds pwcli's compiled hot path beside its pure-Python source (see pwcli/native.py).

pip runs this through pyproject's build backend (``pip install .``, ``pip install -e .``, ``pip
wheel .``). Where a C compiler is, it builds the Wasmtime crossing (pwcli/runtimes/_crossing.c) and
compiles the host and engine modules with mypyc, from the same .py files the pure path runs. A part
that cannot be built is left out with a warning and pwcli runs it in pure Python; ``PWCLI_PURE=1``
at build time builds nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
CROSSING = "pwcli.runtimes._crossing"
# The hot path: every host call and callback runs through these. effects.py stays interpreted
# (its dataclasses name classes of modules that import it, which mypyc cannot initialise).
COMPILED = [
    "pwcli/events.py",
    "pwcli/eventline.py",
    "pwcli/textutil.py",
    *(f"pwcli/host/{m}.py" for m in ("codec", "contexts", "headers", "host", "imports",
                                      "properties", "spec", "wasi")),
    *(f"pwcli/engine/{m}.py" for m in ("callbacks", "callouts", "demux", "engine", "http",
                                        "messages", "options", "replay", "run", "scheduler",
                                        "session", "stream", "tcp", "vm")),
]


class OptionalBuildExt(build_ext):
    """Builds what it can: a failed extension is a warning, and its module stays pure Python."""

    failed: set[str]

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - any compiler failure leaves the pure path
            self.failed.add(ext.name)
            print(f"pwcli: {ext.name} not compiled ({exc}); it runs in pure Python",
                  file=sys.stderr)

    def run(self) -> None:
        self.failed = set()
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler at all
            print(f"pwcli: compiled parts not built ({exc}); pwcli runs in pure Python",
                  file=sys.stderr)
        # mypyc's modules load together (each needs the group's library): one missing, none kept.
        group = [e for e in self.extensions if e.name != CROSSING]
        if any(e.name in self.failed for e in group):
            for e in group:
                built = Path(self.get_ext_fullpath(e.name))
                if built.exists():
                    built.unlink()


def extensions() -> list[Extension]:
    if os.environ.get("PWCLI_PURE", "") not in ("", "0"):
        return []
    out = [Extension(CROSSING,
                     ["pwcli/runtimes/_crossing.c", "pwcli/runtimes/_crossing_memory.c"],
                     depends=["pwcli/runtimes/_crossing.h"])]
    try:
        from mypyc.build import mypycify

        # A library the build cannot see is typed Any rather than failing the build.
        out += mypycify(["--ignore-missing-imports", *COMPILED], opt_level="3",
                        group_name="pwcli._compiled")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - mypyc missing, or a type error
        print(f"pwcli: the host and engine are not compiled ({exc}); they run in pure Python",
              file=sys.stderr)
    return out


os.chdir(ROOT)  # mypyc takes paths relative to the project
setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
