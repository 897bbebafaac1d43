"""The command line's side of traffic from anywhere: the one-request and ``--filter`` options that
``replay`` and ``convert`` share, what a TRACE argument turns out to be, and ``pwcli convert``."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import click

from ..errors import InputError, PwcliError
from .detect import sniff
from .request import OneRequest, request_trace

CAPTURES = ("pcap", "pcapng", "har")

JSONL_SUFFIXES = (".jsonl", ".ndjson")


def traffic_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--request and its companions, and --filter, on a command."""
    options = [
        click.option("--request", "one_request", metavar="'METHOD TARGET'",
                     help="Instead of a trace: one request, e.g. 'POST /api?x=1' or a URL."),
        click.option("-H", "--header", "req_headers", multiple=True, metavar="'NAME: VALUE'",
                     help="A header of --request (repeatable, order kept)."),
        click.option("-d", "--data", "req_data", metavar="TEXT|@FILE",
                     help="The body of --request."),
        click.option("--response-status", default=200, show_default=True,
                     type=click.IntRange(100, 999), help="The upstream's answer to --request."),
        click.option("-R", "--response-header", "resp_headers", multiple=True,
                     metavar="'NAME: VALUE'", help="A header of that answer (repeatable)."),
        click.option("--response-body", metavar="TEXT|@FILE", help="The body of that answer."),
        click.option("--filter", "flow_filter", metavar="EXPR",
                     help="Captures: keep the connections matching EXPR, in capture filter "
                          "words ('host 10.0.0.1 and port 80')."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def one_request(kw: dict[str, Any]) -> OneRequest | None:
    """The --request options (taken out of ``kw``) as a OneRequest, or None without --request."""
    parts = {k: kw.pop(k) for k in ("one_request", "req_headers", "req_data",
                                    "response_status", "resp_headers", "response_body")}
    if parts["one_request"] is None:
        if parts["req_headers"] or parts["req_data"] is not None or parts["resp_headers"] or \
                parts["response_body"] is not None:
            raise click.UsageError("-H, -d, -R and --response-body go with --request")
        return None
    return OneRequest(parts["one_request"], list(parts["req_headers"]), parts["req_data"],
                      parts["response_status"], list(parts["resp_headers"]),
                      parts["response_body"])


def open_input(trace: str | None, request: OneRequest | None, flow_filter: str | None) -> Any:
    """What to replay: a trace file, a capture (by its content), or the one request."""
    from ..tracestream import open_trace
    from .convert import open_capture

    if (trace is None) == (request is None):
        raise click.UsageError("give a TRACE (a trace, pcap, pcapng or HAR file) or --request")
    if request is not None:
        return _request(request, flow_filter)[1]
    assert trace is not None
    select = _filter(flow_filter)
    capture = open_capture(trace, select=select)
    if capture is not None:
        return capture
    if flow_filter is not None:
        raise click.UsageError(f"--filter selects connections of a capture; {trace} is a trace")
    return open_trace(trace)


def _request(request: OneRequest, flow_filter: str | None) -> tuple[dict[str, Any], Any]:
    """The one request's trace, as JSON and checked as a Trace (its file read once)."""
    from ..trace import parse_trace

    if flow_filter is not None:
        raise click.UsageError("--filter selects connections of a capture, not of --request")
    raw = request_trace(request)
    return raw, parse_trace(raw, source="--request")


def _filter(text: str | None) -> Any:
    from .flowfilter import FilterError, compile_filter

    if text is None:
        return None
    try:
        return compile_filter(text)
    except FilterError as exc:
        raise click.BadParameter(str(exc), param_hint="'--filter'") from None


def is_capture(tr: Any) -> bool:
    return getattr(tr, "kind", None) in CAPTURES


def report_capture(tr: Any) -> None:
    """After a replay or a conversion: what the capture skipped, and what it held (stderr)."""
    if is_capture(tr):
        for line in tr.notes:
            click.echo(f"{tr.source}: {line}", err=True)
        click.echo(tr.summary(), err=True)


def whole(capture: Any) -> Any:
    """The capture read into a Trace held in memory (what --against envoy drives Envoy with)."""
    from ..trace import parse_trace

    return parse_trace({"packets": list(capture.dicts())}, source=capture.source)


def spooled(capture: Any, directory: str) -> Any:
    """The capture converted into a JSON Lines trace in ``directory``, for --workers (each worker
    reads its share of a trace file)."""
    from ..tracestream import open_trace
    from .convert import write_trace

    path = os.path.join(directory, "capture.jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        write_trace(capture.dicts(), fh, "jsonl")
    return open_trace(path)


@click.command("convert", context_settings={"help_option_names": ["-h", "--help"],
                                            "max_content_width": 100})
@click.argument("capture", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", metavar="FILE",
              help="Write the trace here (.json: an array; .jsonl: JSON Lines); default stdout.")
@click.option("--format", "fmt", type=click.Choice(["json", "jsonl"]),
              help="The trace's form (default: from the output's name, else json).")
@traffic_options
def convert_cmd(capture: str | None, output: str | None, fmt: str | None,
                flow_filter: str | None, **kw: Any) -> None:
    """Write the trace pwcli derives from CAPTURE (pcap, pcapng or HAR), or from --request."""
    request = one_request(kw)
    if fmt is None:
        fmt = "jsonl" if output and output.lower().endswith(JSONL_SUFFIXES) else "json"

    def run() -> int:
        if capture is not None and request is None and sniff(capture) is None:
            if not os.path.exists(capture):
                raise InputError(f"{capture}: no such file")
            raise InputError(f"{capture}: not a pcap, pcapng or HAR file (by its content)")
        if request is not None and capture is None:
            tr, packets = None, _request(request, flow_filter)[0]["packets"]
        else:
            tr = open_input(capture, request, flow_filter)  # checks the options
            packets = tr.dicts()
        if output is None or output == "-":
            from .convert import write_trace

            n = write_trace(packets, sys.stdout, fmt)
        else:
            n = _write_file(packets, output, fmt)
        report_capture(tr)
        if output not in (None, "-"):
            click.echo(f"wrote {n} packets to {output}", err=True)
        return 0

    try:
        sys.exit(run())
    except PwcliError as exc:
        click.echo(str(exc), err=True)
        sys.exit(exc.exit_code)


def _write_file(packets: Any, output: str, fmt: str) -> int:
    """Write to a file beside ``output`` and move it into place: no half-written trace."""
    from .convert import write_trace

    folder = os.path.dirname(os.path.abspath(output))
    fd, tmp = tempfile.mkstemp(prefix=".pwcli-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            n = write_trace(packets, fh, fmt)
        os.replace(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise
    return n
