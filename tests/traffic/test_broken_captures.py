"""Broken captures: one line naming the file, exit status 2, never a traceback; and fuzzing: any
bytes, any JSON, and a real capture with bytes flipped give pwcli's TraceError or packets that
replay, nothing else."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pwcli.cli import main
from pwcli.errors import TraceError
from pwcli.traffic.convert import open_capture

from ..conftest import EXAMPLES

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
PLUGIN = str(EXAMPLES / "myproject.wasm")
GOOD = (CAPTURES / "http_lo.pcap").read_bytes()
PCAP_HEADER = GOOD[:24]
FUZZ = settings(max_examples=int(os.environ.get("PWCLI_FUZZ_EXAMPLES", "200")),
                deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _pcap_header(linktype: int) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.pcap", b"", "empty.pcap: not a readable pcap file (it ends inside its header)"),
    ("text.pcap", b"hello, this is not a capture at all", "text.pcap: not a readable pcap file "
                                                         "(invalid tcpdump header)"),
    ("wifi.pcap", _pcap_header(105), "wifi.pcap: link type 105 is not one pwcli reads (Ethernet, "
                                     "Linux cooked SLL/SLL2, raw IP, loopback)"),
    ("short.pcapng", b"\x0a\x0d\x0d\x0a\x1c", "short.pcapng: not a readable pcapng file "
                                              "(invalid pcapng header)"),
])
def test_a_broken_capture_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      name: str, content: bytes, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(content)
    for args in (["replay", name, "--wasm", PLUGIN], ["convert", name, "-o", "out.json"]):
        result = CliRunner().invoke(main, args)
        assert (result.exit_code, result.stderr, result.stdout) == (2, message + "\n", "")
    assert not Path("out.json").exists()


def test_a_capture_cut_mid_frame_says_where_and_replays_what_it_has(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cut.pcap").write_bytes(GOOD[:1500])
    result = CliRunner().invoke(main, ["replay", "cut.pcap", "--wasm", PLUGIN, "--format", "json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    # frame 13 is the POST's 138-byte response head, of which 4 bytes are in the file
    assert report["summary"]["streams"] == 2 and report["summary"]["incomplete"] == 1
    assert result.stderr.splitlines() == [
        "cut.pcap: the capture ends inside frame 13 (its last 134 bytes are not in the file)",
        "cut.pcap: 2 HTTP streams from 1 connection; 1 skipped (said above)"]
    Path("mid.pcap").write_bytes(GOOD[:1350])  # frame 11, the POST's body, lacks 4 bytes
    result = CliRunner().invoke(main, ["replay", "mid.pcap", "--wasm", PLUGIN, "--format", "json"])
    assert result.stderr.splitlines() == [
        "mid.pcap: the capture ends inside frame 11 (its last 4 bytes are not in the file)",
        "mid.pcap: connection 1 (127.0.0.1:39256 -> 127.0.0.1:37003): the capture ends inside a "
        "request (after 243 bytes of the client's stream)",
        "mid.pcap: 2 HTTP streams from 1 connection; 2 skipped (said above)"]


def _drain(path: Path) -> None:
    try:
        capture = open_capture(str(path))
        if capture is not None:
            for _ in capture.packets:
                pass
    except TraceError:
        pass


@FUZZ
@given(body=st.binary(max_size=2000))
def test_any_bytes_after_a_pcap_header(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "f.pcap"
    path.write_bytes(PCAP_HEADER + body)
    _drain(path)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(24, len(GOOD) - 1), st.integers(0, 255)),
                      min_size=1, max_size=20))
@example(flips=[(630, 208)])  # a sequence number that puts data after the FIN
def test_a_real_capture_with_bytes_changed(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(GOOD)
    for at, value in flips:
        data[at] = value
    path = tmp_path / "f.pcap"
    path.write_bytes(bytes(data))
    _drain(path)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
ENTRY_KEYS = st.sampled_from(["startedDateTime", "request", "response", "timings",
                              "serverIPAddress", "connection"])


@FUZZ
@given(entries=st.lists(st.dictionaries(ENTRY_KEYS, JSON, max_size=6), max_size=4),
       raw=JSON)
def test_any_har_shape(tmp_path: Path, entries: list[dict[str, Any]], raw: Any) -> None:
    for doc in ({"log": {"entries": entries}}, {"log": raw}, raw):
        path = tmp_path / "f.har"
        path.write_text(json.dumps(doc))
        _drain(path)


def test_without_the_capture_extra_one_line_says_how_to_get_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['dpkt'] = None; from pwcli.cli import main; "
            "sys.argv = ['pwcli', 'replay', sys.argv[1], '--wasm', sys.argv[2]]; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(CAPTURES / "http_lo.pcap"), PLUGIN],
                          capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (f"{CAPTURES / 'http_lo.pcap'}: reading pcap captures needs dpkt: "
                           "pip install 'pwcli[capture]'\n")
