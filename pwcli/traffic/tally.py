"""What a conversion made and skipped (the summary line), and the timed packets it makes."""

from __future__ import annotations

from typing import Any

Timed = tuple[dict[str, Any], float]  # a trace packet (without delta_ms) and its timestamp


class Tally:
    """What a conversion made and skipped, for the summary line."""

    def __init__(self) -> None:
        self.connections = 0
        self.http = 0  # requests
        self.tcp = 0  # connections replayed as TCP data
        self.skipped: list[str] = []

    def line(self, source: str) -> str:
        parts = [f"{self.http} HTTP stream{'s' * (self.http != 1)}"]
        if self.tcp:
            parts.append(f"{self.tcp} TCP connection{'s' * (self.tcp != 1)}")
        text = f"{source}: {' and '.join(parts)} from {self.connections} connection" \
               f"{'s' * (self.connections != 1)}"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped (said above)"
        return text
