"""The pytest plugin through its entry point, run with pytester: golden update, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import EXAMPLES, TRACES

pytest_plugins = ["pytester"]

TEST = f"""
from pathlib import Path

PLUGIN = {str(EXAMPLES / "myproject.wasm")!r}
TRACE = {str(TRACES / "http_4pkts.json")!r}


def test_golden(pwcli_replay):
    pwcli_replay(PLUGIN, TRACE, golden="golden/http.json")


def test_expectation(pwcli_replay):
    trace = json.loads(Path(TRACE).read_text())
    trace[1]["expect"] = {{"response": {{"headers": {{"x-wasm-custom": "BAR"}}}}}}
    pwcli_replay(PLUGIN, trace)
"""


def test_entry_point_fixture_golden_and_expectations(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="import json\n" + TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    lines = result.stdout.lines
    assert "golden golden/http.json: no such file; run pytest --pwcli-update-golden to create it" \
        in lines
    assert "expect: 1 of 1 checks failed" in lines
    assert ('  packet 1 (stream #0 10.0.0.2:50124 -> 10.0.0.1:443): response header '
            'x-wasm-custom: expected "BAR", got "FOO"') in lines

    result = pytester.runpytest("-p", "no:cacheprovider", "--pwcli-update-golden", "-k", "golden")
    result.assert_outcomes(passed=1, deselected=1)
    path = pytester.path / "golden" / "http.json"
    golden = json.loads(path.read_text())
    assert golden["streams"][0]["response"]["headers"][-1] == ["x-wasm-custom", "FOO"]

    golden["streams"][0]["response"]["headers"][-1] = ["x-wasm-custom", "BAR"]
    path.write_text(json.dumps(golden))
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "golden")
    result.assert_outcomes(failed=1, deselected=1)
    lines = result.stdout.lines
    start = lines.index("golden golden/http.json: 1 difference (golden -> this run)")
    assert lines[start + 1:start + 3] == [
        '  streams[0] (10.0.0.2:50124 -> 10.0.0.1:443): response header x-wasm-custom: '
        '"BAR" -> "FOO"',
        "if the change is intended, run pytest --pwcli-update-golden",
    ]


def test_help_lists_the_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--pwcli-update-golden*"])


def test_golden_path_is_the_one_given(tmp_path: Path) -> None:
    from pwcli.pytest_plugin import Replay

    replay = Replay(update=True)
    run = replay(EXAMPLES / "myproject.wasm", TRACES / "http_4pkts.json",
                 golden=tmp_path / "a" / "b.json", config="x", vm_config=b"y")
    assert (tmp_path / "a" / "b.json").exists()
    assert (run.inputs["configuration"], run.inputs["vm_configuration"]) == ("x", "y")
