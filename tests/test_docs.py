"""The README stays true: its transcript is the real output, its tables match the code."""

from __future__ import annotations

import re

from click.testing import CliRunner

from pwcli.cli import main
from pwcli.host.properties import SERVED

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_setup_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    lines = first_block.group(1).strip().splitlines()
    assert lines == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && "
        "pwcli replay traces/http_4pkts.json --wasm example/myproject.wasm",
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && "
        "python -m pytest -q",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert lines[1] in ci


def test_readme_transcript_is_the_real_output(monkeypatch) -> None:
    block = re.search(
        r"<!-- transcript: (.*?) -->\n```text\n\$ (.*?)\n(.*?)```\n<!-- end transcript -->",
        README, re.S,
    )
    assert block is not None
    command, shown, output = block.groups()
    assert shown == command
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, command.split()[1:])
    assert result.exit_code == 0
    assert result.output == output


def test_readme_properties_table_matches_what_is_served() -> None:
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| (.*) \|$", README, re.M))
    assert {k: rows.get(k) for k in SERVED} == SERVED


def test_every_command_is_documented() -> None:
    for name in main.commands:
        assert f"`pwcli {name}" in README, name


def test_readme_pytest_example_is_the_tested_file() -> None:
    section = README[README.index("## Testing a plugin with pytest"):]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    assert block.group(1) == (ROOT / "tests" / "test_pytest_plugin.py").read_text()
