"""The ``pwcli`` command: parse options, call the library, render, choose the exit status."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from datetime import UTC, datetime
from typing import Any

import click

from . import runtimes
from .cliargs import key_values, text_or_file
from .engine import LEVELS, ReplayOptions, Run, replay
from .errors import InputError, PwcliError
from .live.cli import proxy_cmd
from .runtimes.base import Limits
from .serve.commands import client_cmd, serve_cmd
from .traffic.cli import convert_cmd, traffic_options
from .ui.cli import ui_cmd

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _property_values(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in key_values(items, "--property").items():
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _start_time(value: str | None) -> int:
    if value is None:
        return 1_704_067_200 * 1_000_000_000
    try:
        if value.replace(".", "", 1).isdigit():
            return round(float(value) * 1_000_000_000)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return round(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    except ValueError:
        raise InputError(
            f"--start-time {value!r}: expected ISO 8601 (2024-01-01T00:00:00Z) or epoch seconds"
        ) from None


from .pacing import Pacer  # noqa: E402 - re-exported: pwcli.cli.Pacer


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="pwcli", prog_name="pwcli")
def main() -> None:
    """Run proxy-wasm plugins outside a proxy: replay a traffic trace and see everything they do."""


@main.command("replay", context_settings=CONTEXT)
@click.argument("trace", required=False, type=click.Path(dir_okay=False, path_type=str))
@click.option("--wasm", "wasm", required=True, type=click.Path(path_type=str),
              help="The plugin (.wasm) to run.")
@click.option("--runtime", default=runtimes.DEFAULT, show_default=True,
              type=click.Choice(list(runtimes.BACKENDS)), help="WebAssembly engine.")
@click.option("--root-id", help="The plugin_root_id property (default: trace plugin.root_id, else empty).")
@click.option("--vm-id", default="", help="The plugin_vm_id property.")
@click.option("--plugin-name", help="The plugin_name property (default: the root id).")
@click.option("--config", "config", metavar="TEXT|@FILE", help="Plugin configuration.")
@click.option("--vm-config", metavar="TEXT|@FILE", help="VM configuration.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
              help="Environment variable the plugin sees (repeatable; default none).")
@click.option("--property", "props", multiple=True, metavar="PATH=VALUE",
              help="Property override, e.g. request.id=abc (JSON values are decoded; repeatable).")
@click.option("--log-level", type=click.Choice(list(LEVELS)),
              help="Lowest plugin log level shown (default info, as Envoy).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of WASI random_get.")
@click.option("--start-time", help="Virtual wall clock at the trace start (default 2024-01-01T00:00:00Z).")
@click.option("--abi", help="Force the ABI version (0.1.0, 0.2.0, 0.2.1) of a module without a marker.")
@click.option("--lenient", is_flag=True,
              help="Run modules Envoy refuses (bad callback signatures, unknown imports), marked in the report.")
@click.option("--failure-policy", type=click.Choice(["closed", "open", "reload"]), default="closed",
              show_default=True, help="After a trap: fail streams with 503, pass them through, or reload the VM.")
@click.option("--fail-fast", is_flag=True, help="Stop the replay at the first plugin failure.")
@click.option("--drain-ms", default=0.0, type=click.FloatRange(min=0), show_default=True,
              help="Keep firing ticks this long after the last packet.")
@click.option("--budget", default=100_000_000, type=click.IntRange(min=1), show_default=True,
              help="Per-callback budget (wasm instructions, counted deterministically).")
@click.option("--max-memory", default=256, type=click.IntRange(min=1), show_default=True,
              help="Plugin memory cap in MiB.")
@click.option("--no-cache", is_flag=True, help="Do not use the compiled-module cache.")
@click.option("--realtime", is_flag=True,
              help="Deliver packets at their recorded gaps (the same as --multiplier 1).")
@click.option("--multiplier", type=click.FloatRange(min=0, min_open=True), metavar="X",
              help="Deliver packets at their recorded gaps divided by X (2: twice as fast).")
@click.option("--pps", type=click.FloatRange(min=0, min_open=True), metavar="N",
              help="Deliver N packets per second. Pacing never changes the plugin's clock.")
@click.option("--loop", "loops", default=1, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Replay the trace N times; each loop's connections are new ones.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Shard connections by 5-tuple across N processes, one VM each.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "html"]),
              default="table", show_default=True,
              help="Output format; html: one self-contained page (with --golden: printed only "
                   "when given).")
@click.option("--golden", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="Compare the JSON report with FILE (ignoring the runtime): exit 0 equal, 1 not.")
@click.option("--update-golden", is_flag=True, help="Write the --golden FILE from this run.")
@click.option("--against", type=click.Choice(["envoy"]),
              help="Also run the trace through real Envoy and show where the two differ.")
@click.option("--trace-headers-only", is_flag=True,
              help="Present the trace's headers untouched (not the ones Envoy adds).")
@traffic_options
@click.pass_context
def replay_cmd(ctx: click.Context, trace: str | None, wasm: str, runtime: str, root_id: str | None,
               vm_id: str, plugin_name: str | None, config: str | None, vm_config: str | None,
               env: tuple[str, ...], props: tuple[str, ...], log_level: str | None, seed: int,
               start_time: str | None, abi: str | None, lenient: bool, failure_policy: str,
               fail_fast: bool, drain_ms: float, budget: int, max_memory: int, no_cache: bool,
               realtime: bool, multiplier: float | None, pps: float | None, loops: int,
               workers: int, fmt: str, golden: str | None, update_golden: bool,
               against: str | None, trace_headers_only: bool, flow_filter: str | None,
               **kw: Any) -> None:
    """Replay TRACE through the plugin and report every callback, host call and mutation.

    TRACE is a trace (JSON, JSON Lines) or a capture (pcap, pcapng, HAR), told by its
    content; or give --request instead for one request.

    With --golden, --against or expect blocks in the trace, the exit status is the
    comparison's only (0 agree, 1 differ).
    """
    from .expect import has_expectations
    from .pacing import Progress, chain
    from .plugin import load_plugin
    from .eventline import event_line
    from .report import dumps, make_console, render_table, to_json
    from .traffic.cli import (
        is_capture,
        one_request,
        open_input,
        report_capture,
        spooled,
        whole,
    )

    request = one_request(kw)
    if update_golden and golden is None:
        raise click.UsageError("--update-golden needs --golden FILE")
    if sum((realtime, multiplier is not None, pps is not None)) > 1:
        raise click.UsageError("--realtime, --multiplier and --pps exclude each other "
                               "(as tcpreplay's pacing options do): pick one")
    pacer = None
    if realtime or multiplier is not None:
        pacer = Pacer(multiplier or 1.0)
    elif pps is not None:
        pacer = Pacer(None, pps=pps)
    show_report = golden is None or (
        ctx.get_parameter_source("fmt") == click.core.ParameterSource.COMMANDLINE)

    def run(stack: contextlib.ExitStack) -> int:
        options = ReplayOptions(
            runtime=runtime,
            root_id=root_id,
            vm_id=vm_id,
            plugin_name=plugin_name,
            configuration=text_or_file(config, "--config"),
            vm_configuration=text_or_file(vm_config, "--vm-config"),
            environment=key_values(env, "--env") if env else None,
            log_level=log_level,
            seed=seed,
            start_epoch_ns=_start_time(start_time),
            properties=_property_values(props),
            failure_policy=failure_policy,
            fail_fast=fail_fast,
            drain_ms=drain_ms,
            limits=Limits(fuel=budget, max_memory=max_memory << 20),
            cache=not no_cache,
            loop=loops,
            envoy_headers=not trace_headers_only,
        )
        if against:
            from .envoy.cli import check_available

            check_available()  # exit 2 with how to install Envoy, before anything runs
        tr = source = open_input(trace, request, flow_filter)
        if against and is_capture(source):  # Envoy is driven from a trace held whole
            tr = whole(source)
        elif workers > 1 and is_capture(source):  # workers share out a trace file: write one
            tr = spooled(source, stack.enter_context(tempfile.TemporaryDirectory(prefix="pwcli-")))
        # Streamed traces (JSON Lines, big arrays) are read once, as they replay: no expect blocks.
        streamed = getattr(tr, "streaming", False)
        expects = not streamed and has_expectations(tr)
        plugin = load_plugin(wasm, abi=abi, lenient=lenient)
        progress = None
        if Progress.wanted() and workers == 1:
            total = None if streamed else len(tr.packets) * loops
            progress = Progress(total)
        options.pace = chain(pacer, progress)
        # --format jsonl streams: events are printed as they happen, finished streams dropped.
        streaming = fmt == "jsonl" and show_report and not expects and golden is None
        write = sys.stdout.write  # what click.echo would write, without its per-call cost
        sink = (lambda ev: write(event_line(ev) + "\n")) if fmt == "jsonl" and show_report else None
        try:
            if workers > 1:
                from .workers import replay_sharded

                result: Run = replay_sharded(plugin, tr, options, workers,
                                             write_lines=write if sink is not None else None,
                                             streaming=streaming, expects=expects)
            else:
                result = replay(plugin, tr, options, on_event=sink,
                                on_stream=(lambda r: None) if streaming else None)
        finally:
            if progress is not None:
                progress.close()
        comparison = None
        if against:
            from .envoy.cli import compare_for_cli

            comparison = compare_for_cli(plugin, tr, options, result)
        checked_golden = None
        if not show_report:
            pass
        elif fmt == "html":
            from . import golden as golden_mod
            from .html.report import html_report

            if golden is not None:  # shown in the page, and decides the exit status below
                checked_golden = golden_mod.check(golden, to_json(result), update=update_golden)
            click.echo(html_report(result, comparison=comparison, golden=checked_golden),
                       nl=False)
        elif fmt == "json":
            report = to_json(result)
            if comparison is not None:
                report["envoy"] = comparison.to_json()
            click.echo(dumps(report), nl=False)
        elif fmt == "jsonl":
            from .report import summary

            click.echo(json.dumps({"summary": summary(result)}, sort_keys=True))
            if comparison is not None:
                click.echo(json.dumps({"envoy": comparison.to_json()}, sort_keys=True))
        else:
            console = make_console()
            render_table(result, console)
            if comparison is not None:
                from .envoy.render import render_comparison

                render_comparison(comparison, console)
        if pacer is not None:
            click.echo(pacer.describe(), err=True)  # stderr only: the report stays deterministic
        report_capture(source)  # what a capture skipped and held, on stderr
        if result.input_error is not None:  # a bad packet mid-way: what ran is reported above
            click.echo(str(result.input_error), err=True)
            return result.input_error.exit_code
        if comparison is not None:
            agreed = 0 if comparison.agrees_with(result) else 1
            if result.expectations is None and golden is None:
                return agreed
            return max(agreed, _compare(result, golden, update_golden,
                                        to_stderr=show_report and fmt != "table",
                                        checked=checked_golden))
        if result.expectations is None and golden is None:
            return result.exit_code
        return _compare(result, golden, update_golden,
                        to_stderr=show_report and fmt != "table", checked=checked_golden)

    def run_with_cleanup() -> int:
        with contextlib.ExitStack() as stack:
            return run(stack)

    sys.exit(_guard(run_with_cleanup))


main.add_command(serve_cmd)
main.add_command(convert_cmd)
main.add_command(proxy_cmd)
main.add_command(ui_cmd)
main.add_command(client_cmd)


@main.command("schema", context_settings=CONTEXT)
def schema_cmd() -> None:
    """Print the JSON Schema of a trace file."""
    from .trace import Trace

    schema = Trace.model_json_schema()
    click.echo(json.dumps(schema, indent=2, sort_keys=True))


@main.command("runtimes", context_settings=CONTEXT)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def runtimes_cmd(fmt: str) -> None:
    """Every runtime pwcli knows: available here or not, version, library location, features."""
    infos = [runtimes.describe(name) for name in runtimes.BACKENDS]
    if fmt == "json":
        click.echo(json.dumps([i.__dict__ for i in infos], indent=2, sort_keys=True))
        return
    from .inspect_report import render_runtimes
    from .report import make_console

    render_runtimes(infos, make_console())


@main.command("inspect", context_settings=CONTEXT)
@click.argument("plugin", type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def inspect_cmd(plugin: str, fmt: str) -> None:
    """What PLUGIN (.wasm) is, needs and gets: ABI, exports, imports, toolchain, and whether it runs."""
    from .inspect import inspect_plugin
    from .inspect_report import render_inspect
    from .report import dumps, make_console

    def run() -> int:
        report = inspect_plugin(plugin)
        if fmt == "json":
            click.echo(dumps(report), nl=False)
        else:
            render_inspect(report, make_console())
        return 0

    sys.exit(_guard(run))


def _compare(result: Run, golden: str | None, update: bool, *, to_stderr: bool,
             checked: Any = None) -> int:
    """Expectations and golden: print what differed; the exit status is the comparison's only.
    ``checked``: the golden's result when the report already checked it (--format html)."""
    from . import golden as golden_mod
    from .report import to_json

    ok = True
    lines: list[str] = []
    if result.expectations is not None:
        outcome = result.expectations
        ok = ok and outcome.ok
        lines += outcome.lines()
    if golden is not None:
        res = checked or golden_mod.check(golden, to_json(result), update=update)
        ok = ok and res.ok
        lines += res.lines()
    for line in lines:
        click.echo(line, err=to_stderr)
    return 0 if ok else 1


def _guard(fn: Any) -> int:
    """Run ``fn``; a PwcliError becomes its one line on stderr and its exit status."""
    try:
        return int(fn())
    except PwcliError as exc:
        click.echo(str(exc), err=True)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    main()
