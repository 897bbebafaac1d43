"""Pacing as tcpreplay: --realtime, --multiplier, --pps, --loop; a fake clock, no real sleeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pwcli.cli import main
from pwcli.pacing import Pacer, chain

ROOT = Path(__file__).resolve().parent.parent
MYPROJECT = str(ROOT / "example" / "myproject.wasm")
TRACE = str(ROOT / "traces" / "http_4pkts.json")  # gaps 0, 5, 10, 15 ms: at 0, 5, 15, 30 ms


class FakeClock:
    def __init__(self, lag: float = 0.0) -> None:
        self.now = 100.0
        self.lag = lag  # each sleep oversleeps this much
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 9))
        self.now += seconds + self.lag


def test_multiplier_sleeps_the_scaled_gaps_and_measures_drift() -> None:
    clock = FakeClock(lag=0.001)
    pacer = Pacer(2.0, clock=clock, sleep=clock.sleep)
    for i, t_ms in enumerate((0, 5, 15, 30)):
        pacer(i, t_ms * 1_000_000)
    # Due at 0, 2.5, 7.5, 15 ms; each sleep overshoots 1 ms, which the next sleep absorbs.
    assert clock.slept == [0.0025, 0.004, 0.0065]
    assert pacer.max_drift == pytest.approx(0.001)
    assert pacer.mean_drift == pytest.approx(0.00075)
    assert pacer.last_due == pytest.approx(0.015)


def test_pps_ignores_the_recorded_gaps() -> None:
    clock = FakeClock()
    pacer = Pacer(None, pps=100, clock=clock, sleep=clock.sleep)
    for i, t_ms in enumerate((0, 500, 501, 9000)):
        pacer(i, t_ms * 1_000_000)
    assert clock.slept == [0.01, 0.01, 0.01]
    assert pacer.max_drift == 0.0


def test_a_late_packet_is_delivered_at_once_and_counted_as_drift() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    pacer(0, 0)
    clock.now += 0.050  # the plugin took 50 ms on packet 0
    pacer(1, 10_000_000)  # due at 10 ms: 40 ms late
    assert clock.slept == []
    assert pacer.max_drift == pytest.approx(0.040)
    assert "largest 40.0 ms" in pacer.describe()


def test_pacer_needs_exactly_one_mode() -> None:
    with pytest.raises(ValueError):
        Pacer(None)
    with pytest.raises(ValueError):
        Pacer(1.0, pps=5)
    with pytest.raises(ValueError):
        Pacer(0.0)


def test_chain_calls_each_hook() -> None:
    seen: list[tuple[str, int]] = []
    hook = chain(None, lambda i, t: seen.append(("a", i)), lambda i, t: seen.append(("b", i)))
    assert hook is not None
    hook(3, 0)
    assert seen == [("a", 3), ("b", 3)]
    assert chain(None, None) is None


@pytest.mark.parametrize("opts", [
    ["--realtime", "--multiplier", "2"],
    ["--realtime", "--pps", "10"],
    ["--multiplier", "2", "--pps", "10"],
])
def test_pacing_options_exclude_each_other(opts: list[str]) -> None:
    result = CliRunner().invoke(main, ["replay", TRACE, "--wasm", MYPROJECT, *opts])
    assert result.exit_code == 2
    assert "--realtime, --multiplier and --pps exclude each other" in result.stderr


def test_pacing_changes_delivery_only_never_the_report() -> None:
    runner = CliRunner()
    plain = runner.invoke(main, ["replay", TRACE, "--wasm", MYPROJECT, "--format", "json"])
    fast = runner.invoke(main, ["replay", TRACE, "--wasm", MYPROJECT, "--format", "json",
                                "--multiplier", "1000"])  # 30 ms of trace in 30 us
    pps = runner.invoke(main, ["replay", TRACE, "--wasm", MYPROJECT, "--format", "json",
                               "--pps", "100000"])
    assert plain.exit_code == fast.exit_code == pps.exit_code == 0
    assert plain.stdout == fast.stdout == pps.stdout  # virtual time untouched
    assert "pacing (--multiplier 1000): 4 packets" in fast.stderr
    assert "pacing (--pps 100000): 4 packets" in pps.stderr
    assert "drift behind schedule: largest" in fast.stderr


def test_loop_replays_the_trace_again_with_new_connections() -> None:
    result = CliRunner().invoke(main, ["replay", TRACE, "--wasm", MYPROJECT, "--format", "json",
                                       "--loop", "3"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    streams = report["streams"]
    assert report["summary"]["packets"] == 12
    assert [s["first_packet"] for s in streams] == [0, 2, 4, 6, 8, 10]
    assert [s["context_id"] for s in streams] == [2, 3, 4, 5, 6, 7]
    # The same addresses and ports each loop, but new connections; virtual time keeps running.
    assert [s["client"] for s in streams] == ["10.0.0.2:50124", "10.0.0.2:50125"] * 3
    assert report["summary"]["end_t_ms"] == 90


def test_loop_one_is_the_plain_replay() -> None:
    runner = CliRunner()
    a = runner.invoke(main, ["replay", TRACE, "--wasm", MYPROJECT, "--format", "json"])
    b = runner.invoke(main, ["replay", TRACE, "--wasm", MYPROJECT, "--format", "json",
                             "--loop", "1"])
    assert a.stdout == b.stdout


def test_progress_draws_only_on_a_terminal() -> None:
    import io

    from pwcli.pacing import Progress

    assert not Progress.wanted(io.StringIO())  # not a terminal: silent
    out = io.StringIO()
    bar = Progress(1000, after=0.0, every=0.0, file=out)
    for i in range(600):
        bar(i, 0)
    assert bar.bar is not None and bar.count == 600
    bar.close()
    assert bar.bar is None
