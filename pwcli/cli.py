"""The ``pwcli`` command: parse options, call the library, render, choose the exit status."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from . import runtimes
from .errors import InputError, PwcliError
from .replay import LEVELS, ReplayOptions, Run, replay
from .runtimes.base import Limits

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _text_or_file(value: str | None, option: str) -> bytes | None:
    if value is None:
        return None
    if value.startswith("@"):
        path = value[1:]
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise InputError(f"{option} {value}: cannot read {path}: {exc.strerror or exc}") from None
    return value.encode()


def _key_values(items: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{option} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _property_values(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in _key_values(items, "--property").items():
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
            dt = dt.replace(tzinfo=timezone.utc)
        return round(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    except ValueError:
        raise InputError(
            f"--start-time {value!r}: expected ISO 8601 (2024-01-01T00:00:00Z) or epoch seconds"
        ) from None


class Pacer:
    """Real-time pacing: sleeps the recorded gaps (scaled); never changes the plugin's clock."""

    def __init__(self, multiplier: float) -> None:
        self.multiplier = multiplier
        self.start: float | None = None
        self.max_drift = 0.0

    def __call__(self, index: int, virtual_ns: int) -> None:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        target = self.start + virtual_ns / 1e9 * self.multiplier
        if target > now:
            time.sleep(target - now)
        self.max_drift = max(self.max_drift, time.monotonic() - target)


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="pwcli", prog_name="pwcli")
def main() -> None:
    """Run proxy-wasm plugins outside a proxy: replay a traffic trace and see everything they do."""


@main.command("replay", context_settings=CONTEXT)
@click.argument("trace", type=click.Path(dir_okay=False, path_type=str))
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
@click.option("--realtime", is_flag=True, help="Sleep the recorded gaps between packets.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl"]), default="table",
              show_default=True, help="Output format (with --golden: printed only when given).")
@click.option("--golden", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="Compare the JSON report with FILE (ignoring the runtime): exit 0 equal, 1 not.")
@click.option("--update-golden", is_flag=True, help="Write the --golden FILE from this run.")
@click.pass_context
def replay_cmd(ctx: click.Context, trace: str, wasm: str, runtime: str, root_id: str | None,
               vm_id: str, plugin_name: str | None, config: str | None, vm_config: str | None,
               env: tuple[str, ...], props: tuple[str, ...], log_level: str | None, seed: int,
               start_time: str | None, abi: str | None, lenient: bool, failure_policy: str,
               fail_fast: bool, drain_ms: float, budget: int, max_memory: int, no_cache: bool,
               realtime: bool, fmt: str, golden: str | None, update_golden: bool) -> None:
    """Replay TRACE through the plugin and report every callback, host call and mutation.

    With --golden or expect blocks in the trace, the exit status is the comparison's only.
    """
    from .expect import Checker, has_expectations
    from .plugin import load_plugin
    from .report import dumps, event_line, make_console, render_table, to_json
    from .trace import load_trace

    if update_golden and golden is None:
        raise click.UsageError("--update-golden needs --golden FILE")
    show_report = golden is None or (
        ctx.get_parameter_source("fmt") == click.core.ParameterSource.COMMANDLINE)

    def run() -> int:
        options = ReplayOptions(
            runtime=runtime,
            root_id=root_id,
            vm_id=vm_id,
            plugin_name=plugin_name,
            configuration=_text_or_file(config, "--config"),
            vm_configuration=_text_or_file(vm_config, "--vm-config"),
            environment=_key_values(env, "--env") if env else None,
            log_level=log_level,
            seed=seed,
            start_epoch_ns=_start_time(start_time),
            properties=_property_values(props),
            failure_policy=failure_policy,
            fail_fast=fail_fast,
            drain_ms=drain_ms,
            limits=Limits(fuel=budget, max_memory=max_memory << 20),
            cache=not no_cache,
            pace=Pacer(1.0) if realtime else None,
        )
        tr = load_trace(trace)
        checker = Checker(tr) if has_expectations(tr) else None
        plugin = load_plugin(wasm, abi=abi, lenient=lenient)
        from .replay import Replayer

        replayer = Replayer(plugin, tr, options)
        if checker is not None:
            replayer.after_packet = checker.after_packet
        if fmt == "jsonl" and show_report:
            replayer.sink = lambda ev: click.echo(event_line(ev))  # get_text_stream: deprecated
        result: Run = replayer.run()
        if not show_report:
            pass
        elif fmt == "json":
            click.echo(dumps(to_json(result)), nl=False)
        elif fmt == "jsonl":
            from .report import summary

            click.echo(json.dumps({"summary": summary(result)}, sort_keys=True))
        else:
            render_table(result, make_console())
        if isinstance(options.pace, Pacer) and fmt == "table" and show_report:
            click.echo(f"pacing: largest drift behind schedule {options.pace.max_drift * 1000:.1f} ms",
                       err=True)
        if checker is None and golden is None:
            return result.exit_code
        return _compare(result, checker, golden, update_golden,
                        to_stderr=show_report and fmt != "table")

    sys.exit(_guard(run))


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


def _compare(result: Run, checker: Any, golden: str | None, update: bool, *, to_stderr: bool) -> int:
    """Expectations and golden: print what differed; the exit status is the comparison's only."""
    from . import golden as golden_mod
    from .report import to_json

    ok = True
    lines: list[str] = []
    if checker is not None:
        outcome = checker.evaluate(result)
        ok = ok and outcome.ok
        lines += outcome.lines()
    if golden is not None:
        res = golden_mod.check(golden, to_json(result), update=update)
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
