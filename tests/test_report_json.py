"""The canonical JSON report: structure, effective inputs, determinism, nothing run-specific."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pwcli.cli import main

from .conftest import EXAMPLES, TRACES

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden" / "http_4pkts.json"


def report_text(*args: str) -> str:
    result = CliRunner().invoke(main, ["replay", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return result.stdout


def report(*args: str) -> dict[str, Any]:
    return json.loads(report_text(*args))


def test_two_runs_are_byte_identical_in_and_across_processes() -> None:
    args = [str(TRACES / "http_4pkts.json"), "--wasm", str(EXAMPLES / "myproject.wasm")]
    first = report_text(*args)
    assert report_text(*args) == first
    other = subprocess.run(
        [sys.executable, "-m", "pwcli", "replay", *args, "--format", "json", "--no-cache"],
        capture_output=True, text=True, check=True, cwd="/",
    )
    assert other.stdout == first


def test_no_paths_and_no_wall_clock(tmp_path: Path) -> None:
    wasm = tmp_path / "copy.wasm"
    wasm.write_bytes((EXAMPLES / "myproject.wasm").read_bytes())
    text = report_text(str(TRACES / "http_4pkts.json"), "--wasm", str(wasm))
    assert str(tmp_path) not in text and str(ROOT) not in text
    rep = json.loads(text)
    assert rep["plugin"]["file"] == "copy.wasm"
    keys: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            keys.update(v)
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(rep)
    assert not {k for k in keys if "wall" in k or "fuel" in k or "duration" in k}
    # Only the plugin file name differs from the committed golden.
    golden = json.loads(GOLDEN.read_text())
    golden["plugin"]["file"] = "copy.wasm"
    assert rep == golden


def test_structure() -> None:
    rep = json.loads(GOLDEN.read_text())
    assert list(rep) == sorted(rep)  # canonical key order
    assert set(rep) == {"failures", "format_version", "inputs", "metrics", "notes", "plugin",
                        "runtime", "streams", "summary", "vm", "warnings"}
    assert rep["format_version"] == 1
    assert set(rep["plugin"]) == {"abi", "file", "sha256", "size"}
    assert rep["runtime"] == {"name": "wasmtime"}
    assert set(rep["inputs"]) == {
        "budget", "configuration", "drain_ms", "envoy_headers", "environment", "fail_fast",
        "failure_policy", "lenient", "log_level", "max_memory", "plugin_name", "properties", "root_id", "seed",
        "start_time_ns", "vm_configuration", "vm_id",
    }
    stream = rep["streams"][0]
    assert set(stream) == {
        "actions", "client", "context_id", "events", "failure", "first_packet", "flags",
        "header_changes", "index", "kind", "local_reply", "logs", "request", "response", "server",
    }
    assert stream["request"]["headers"][0] == [":authority", "10.0.0.1"]
    assert stream["events"][3] == {
        "args": {"context_id": 2, "end_of_stream": True, "headers": 9}, "ctx": 2,
        "kind": "callback", "name": "proxy_on_request_headers", "result": "continue", "t_ms": 0,
    }
    assert stream["logs"][1] == {"level": "info", "message": "onRequestHeaders 2 headers=9 "
                                 "end_of_stream=1", "t_ms": 0}
    assert rep["summary"] == {
        "callbacks": 20, "completed": 2, "end_t_ms": 30, "exit_status": 0, "failed": 0,
        "host_calls": 16, "incomplete": 0, "local_replies": 0, "logs": {"info": 48},
        "not_run": 0, "packets": 4, "stalled": 0, "streams": 2,
    }


def test_trace_plugin_inputs_are_used_and_options_override_them(tmp_path: Path) -> None:
    args = [str(TRACES / "as_headers.json"), "--wasm", str(EXAMPLES / "as_headers.wasm")]
    rep = report(*args)
    assert {k: rep["inputs"][k] for k in ("root_id", "configuration", "log_level")} == {
        "root_id": "as_headers", "configuration": "{}", "log_level": "info"}
    assert rep["vm"]["logs"][0]["message"] == (
        "as_headers: configured (configuration_size 2, configuration '{}')")
    assert rep["warnings"] == []

    rep = report(*args, "--config", '{"a":1}', "--vm-config", "vm", "--env", "K=V",
                 "--log-level", "warn", "--seed", "7", "--start-time", "2025-01-01T00:00:00Z",
                 "--property", "request.id=abc")
    assert {k: rep["inputs"][k] for k in ("configuration", "vm_configuration", "environment",
                                          "log_level", "seed", "start_time_ns", "properties")} == {
        "configuration": '{"a":1}', "vm_configuration": "vm", "environment": {"K": "V"},
        "log_level": "warn", "seed": 7, "start_time_ns": 1735689600000000000,
        "properties": {"request.id": "abc"},
    }
    assert rep["vm"]["logs"] == []  # info lines are below --log-level warn
    assert rep["summary"]["logs"]["info"] > 0  # ... though the plugin logged them



def test_trace_plugin_block_sets_root_id_and_log_level_and_options_win(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    packets = json.loads((TRACES / "http_4pkts.json").read_text())
    trace.write_text(json.dumps({"plugin": {"root_id": "mine", "log_level": "error"},
                                 "packets": packets}))
    args = [str(trace), "--wasm", str(EXAMPLES / "myproject.wasm")]
    rep = report(*args)
    assert (rep["inputs"]["root_id"], rep["inputs"]["plugin_name"]) == ("mine", "mine")
    assert rep["inputs"]["log_level"] == "error"
    assert [s["logs"] for s in rep["streams"]] == [[], []]
    rep = report(*args, "--root-id", "other", "--log-level", "info")
    assert (rep["inputs"]["root_id"], rep["inputs"]["log_level"]) == ("other", "info")
    assert len(rep["streams"][0]["logs"]) == 23


def test_jsonl_callback_lines_carry_their_result_before_what_they_did(monkeypatch) -> None:
    import json as _json

    from click.testing import CliRunner

    from pwcli.cli import main

    from .conftest import ROOT

    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        main, ["replay", "traces/http_4pkts.json", "--wasm", "example/myproject.wasm",
               "--format", "jsonl"]
    )
    assert result.exit_code == 0
    lines = [_json.loads(line) for line in result.output.splitlines()]
    names = [(r.get("kind"), r.get("name"), r.get("result")) for r in lines[:-1]]
    i = names.index(("callback", "proxy_on_request_headers", "continue"))
    assert names[i + 1] == ("log", "info", None)
    assert lines[i + 1]["args"] == {"message": "onRequestHeaders 2 headers=9 end_of_stream=1"}
    assert ("callback", "proxy_on_done", True) in names
    assert "summary" in lines[-1]
