"""The README and docs/ stay true: the transcript is the real output, tables match the code, examples
are the tested files, links lead somewhere."""

from __future__ import annotations

import re

from click.testing import CliRunner

from pwcli.cli import main
from pwcli.host.properties import SERVED

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


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


def test_properties_table_matches_what_is_served() -> None:
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| (.*) \|$", (DOCS / "trace.md").read_text(), re.M))
    assert {k: rows.get(k) for k in SERVED} == SERVED


def test_every_command_is_documented() -> None:
    for name in main.commands:
        assert f"`pwcli {name}" in README, name


def _python_block_after(text: str, heading: str) -> str:
    block = re.search(r"```python\n(.*?)```", text[text.index(heading):], re.S)
    assert block is not None
    return block.group(1)


def test_pytest_example_is_the_tested_file() -> None:
    python = (DOCS / "python.md").read_text()
    assert _python_block_after(python, "## Testing a plugin with pytest") == (
        ROOT / "tests" / "test_pytest_plugin.py").read_text()


def test_session_example_is_the_tested_file() -> None:
    python = (DOCS / "python.md").read_text()
    assert _python_block_after(python, "## Driving a plugin packet by packet") == (
        ROOT / "tests" / "test_session_example.py").read_text()


def test_readme_python_snippet_runs(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    exec(_python_block_after(README, "## From Python"), namespace)  # noqa: S102
    assert namespace["run"].stream(0).response.header("x-wasm-custom") == "FOO"
    assert namespace["s"].run.streams[0].response.header("x-wasm-custom") == "FOO"


def _anchors(text: str) -> set[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_every_link_between_the_pages_leads_somewhere() -> None:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S)):
            if "://" in target:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in _anchors(dest.read_text()), f"{page.name}: {target}"
    linked = set(re.findall(r"\]\(docs/([a-z-]+\.md)\)", README))
    assert linked == {p.name for p in DOCS.glob("*.md")}
