"""The comparison as the terminal shows it: a verdict line and one row per difference."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .compare import Comparison

CELL = 300  # characters of a value shown in a cell


def _cell(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        shown = "\n".join(value)
    else:
        shown = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return shown if len(shown) <= CELL else shown[: CELL - 3] + "..."


def render_comparison(c: Comparison, console: Console) -> None:
    title = f"pwcli vs Envoy {c.version}"
    if c.refused is not None:
        console.print(Text.assemble((f"\n{title}: ", "bold"), ("Envoy refused the plugin: ", "red"),
                                    c.refused))
        return
    if not c.differences:
        console.print(Text.assemble((f"\n{title}: ", "bold"),
                                    ("agree", "green"), f" on {c.streams} streams"))
    else:
        table = Table(title=f"{title}: {len(c.differences)} differences", title_justify="left")
        for col in ("stream", "where", "what", "pwcli", "envoy"):
            table.add_column(col, overflow="fold")
        for d in c.differences:
            table.add_row("vm" if d.stream is None else f"#{d.stream}", d.where, d.what,
                          _cell(d.pwcli), _cell(d.envoy))
        console.print(table)
    console.print("not compared: " + "; ".join(c.not_compared), style="dim")
