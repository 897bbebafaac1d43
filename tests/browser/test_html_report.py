"""The HTML report of the example, opened from a file in a real browser, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from pwcli.cli import main

from ..conftest import EXAMPLES, ROOT
from .conftest import wait

PLUGIN = str(EXAMPLES / "myproject.wasm")


def _report(tmp_path: Path, *args: str, name: str = "r.html") -> Path:
    result = CliRunner().invoke(main, ["replay", *args, "--wasm", PLUGIN, "--format", "html"])
    path = tmp_path / name
    path.write_text(result.stdout, encoding="utf-8")
    return path


def _open(browser: Any, path: Path) -> None:
    browser.get(path.as_uri())
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "section.pw-stream"))


def _changes(browser: Any, stream: int) -> list[tuple[str, str, str]]:
    rows = browser.find_elements(By.CSS_SELECTOR, f"#stream-{stream} table.pw-headers tr")
    return [(r.get_attribute("data-op"), r.get_attribute("data-name"),
             r.find_elements(By.TAG_NAME, "td")[2].text) for r in rows
            if r.get_attribute("data-op") != "same"]


def test_the_example_report_shows_both_streams_with_their_header_diffs(browser: Any,
                                                                         tmp_path: Path) -> None:
    path = _report(tmp_path, str(ROOT / "traces" / "http_4pkts.json"))
    text = path.read_text()
    assert "<link" not in text and "src=\"http" not in text  # self-contained: nothing to fetch
    _open(browser, path)
    assert browser.find_element(By.TAG_NAME, "h1").text == "pwcli replay: myproject.wasm"
    rows = browser.find_elements(By.CSS_SELECTOR, "table.pw-streams tbody tr")
    assert [r.text.split()[0] for r in rows] == ["#0", "#1"]
    for stream in (0, 1):
        assert _changes(browser, stream) == [("add", "a", "B2"), ("add", "x-wasm-custom", "FOO")]
        row = browser.find_element(By.CSS_SELECTOR, f"#stream-{stream} tr[data-op=add]")
        assert row.value_of_css_property("background-color") == "rgba(230, 246, 234, 1)"
    timeline = browser.find_elements(By.CSS_SELECTOR, "#stream-0 tr.pw-event")
    assert timeline[0].text.startswith("0 2 callback → proxy_on_context_create(context_id=2")
    assert any("[info] onRequestHeaders 2 headers=9 end_of_stream=1" in r.text for r in timeline)
    # offline: the page fetched nothing (no styles, scripts, fonts or images from anywhere)
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_filters_and_search_work_offline(browser: Any, tmp_path: Path) -> None:
    _open(browser, _report(tmp_path, str(ROOT / "traces" / "http_4pkts.json")))
    Select(browser.find_element(By.CSS_SELECTOR, ".pw-f-stream")).select_by_value("1")
    assert not browser.find_element(By.ID, "stream-0").is_displayed()
    assert browser.find_element(By.ID, "stream-1").is_displayed()
    browser.find_element(By.CSS_SELECTOR, ".pw-f-kind[value=hostcall]").click()
    shown = [r for r in browser.find_elements(By.CSS_SELECTOR, "#stream-1 tr.pw-event")
             if r.is_displayed()]
    assert shown and all(r.get_attribute("data-kind") != "hostcall" for r in shown)
    search = browser.find_element(By.CSS_SELECTOR, ".pw-f-search")
    search.send_keys("onResponseBody")
    shown = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#stream-1 tr.pw-event")
             if r.is_displayed()]
    assert shown == ["30 3 log [info] onResponseBody 3 size=9 end_of_stream=0",
                     "30 3 log [info] onResponseBody 3 size=0 end_of_stream=1"]


def test_plugin_output_is_text_never_markup(browser: Any, tmp_path: Path) -> None:
    """The example logs every request header: a header holding markup comes back as its log line
    and header row, shown as text; no script of it runs."""
    evil = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
    trace = tmp_path / "evil.json"
    trace.write_text(json.dumps([
        {"sip": "10.0.0.2", "sp": 1, "dip": "10.0.0.1", "dp": 80, "forward_direction": True,
         "method": "GET", "uri_path": "/", "headers": [["x-evil", evil]]},
        {"sip": "10.0.0.1", "sp": 80, "dip": "10.0.0.2", "dp": 1, "forward_direction": False,
         "body": "</script><script>window.pwned=3</script>"}]))
    path = _report(tmp_path, str(trace))
    assert "<script>window.pwned" not in path.read_text()  # escaped in the embedded data
    _open(browser, path)
    assert browser.execute_script("return window.pwned === undefined")
    logs = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#stream-0 tr.pw-event")]
    assert f"0 2 log [info] x-evil -> {evil}" in logs
    body = browser.find_element(By.CSS_SELECTOR, "#stream-0 pre.pw-body")
    assert body.text == "</script><script>window.pwned=3</script>"
    assert browser.find_elements(By.CSS_SELECTOR, "#stream-0 img") == []


def test_golden_differences_are_highlighted_in_place(browser: Any, tmp_path: Path) -> None:
    trace = str(ROOT / "traces" / "http_4pkts.json")
    golden = tmp_path / "golden.json"
    result = CliRunner().invoke(main, ["replay", trace, "--wasm", PLUGIN, "--format", "json"])
    report = json.loads(result.stdout)
    report["streams"][1]["response"]["headers"][-1][1] = "BAR"  # as if the plugin had changed
    golden.write_text(json.dumps(report))
    result = CliRunner().invoke(main, ["replay", trace, "--wasm", PLUGIN, "--format", "html",
                                       "--golden", str(golden)])
    assert result.exit_code == 1
    path = tmp_path / "g.html"
    path.write_text(result.stdout)
    _open(browser, path)
    assert browser.find_element(By.CSS_SELECTOR, ".pw-verdict").text == "differ"
    assert browser.find_elements(By.CSS_SELECTOR, "#stream-0 li.pw-diff") == []
    (diff,) = browser.find_elements(By.CSS_SELECTOR, "#stream-1 li.pw-diff")
    assert diff.text.startswith("golden differs: streams[1] (10.0.0.2:50125 -> 10.0.0.1:443): "
                                "response header x-wasm-custom")
    assert "has-diff" in browser.find_element(By.ID, "stream-1").get_attribute("class")


def test_metrics_and_shared_data_are_shown(browser: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["replay", str(ROOT / "traces" / "go_headers.json"),
                                       "--wasm", str(EXAMPLES / "go_wasip1.wasm"),
                                       "--format", "html"])
    path = tmp_path / "go.html"
    path.write_text(result.stdout)
    _open(browser, path)
    metrics = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.pw-metrics tr")]
    assert metrics == ['go_requests {"type":"counter","value":2}']
    shared = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "table.pw-shared tbody tr")]
    assert shared == ["go_hits 2 2"]
