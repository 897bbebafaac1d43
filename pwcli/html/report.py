"""``--format html``: one self-contained file (styles, script and data inline; no network) that
shows the run: summary, streams, each stream's header changes as before/after diffs, bodies and
timeline on the virtual clock, metrics, warnings; with ``--golden`` or ``--against envoy`` the
differences in place.

The run's data is embedded as JSON in a ``<script type="application/json">`` element with ``<``,
``>`` and ``&`` written as JSON escapes (``\\u003c`` ...), so nothing the plugin wrote can end
the element; the script sets every value as text.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

GOLDEN_STREAM = re.compile(r"^streams\[(\d+)\]")


def asset(name: str, package: str = "pwcli.html") -> str:
    """A file of ``package``'s assets directory (the page's styles and scripts)."""
    return resources.files(package).joinpath("assets", name).read_text(encoding="utf-8")


def safe_json(data: Any) -> str:
    """JSON that can sit inside a <script> element whatever the strings in it hold."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def report_data(run: Any, *, comparison: Any = None, golden: Any = None) -> dict[str, Any]:
    """What the page shows: the JSON report, every event in order (logs included), and the
    comparisons' differences with the stream each belongs to."""
    from ..eventline import event_record
    from ..report import to_json

    timeline = [event_record(ev) for ev in run.events]
    data: dict[str, Any] = {"report": to_json(run), "timeline": timeline,
                            "title": f"pwcli replay: {run.plugin['file']}",
                            "envoy": comparison.to_json() if comparison is not None else None,
                            "golden": None,
                            "shared_data": [{"key": k, "value": v, "cas": cas}
                                            for k, (v, cas) in run.shared_data.items()]}
    if golden is not None:
        data["golden"] = {"path": golden.path, "status": golden.status, "ok": golden.ok,
                          "differences": [{"stream": _golden_stream(d), "text": d}
                                          for d in golden.differences]}
    return data


def _golden_stream(line: str) -> int | None:
    m = GOLDEN_STREAM.match(line)
    return int(m.group(1)) if m else None


def page(data: dict[str, Any], *, title: str) -> str:
    """The whole page: the renderer draws ``data`` into #pwcli-report when it loads."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{asset('report.css')}</style>\n"
        "</head>\n<body>\n<div id=\"pwcli-report\"></div>\n"
        f"<script type=\"application/json\" id=\"pwcli-data\">{safe_json(data)}</script>\n"
        f"<script>\n{asset('report.js')}</script>\n</body>\n</html>\n")


def html_report(run: Any, *, comparison: Any = None, golden: Any = None) -> str:
    data = report_data(run, comparison=comparison, golden=golden)
    return page(data, title=data["title"])
