"""pwcli ui in a real browser: send a request through the example and see the mutations appear;
history and comparison; what the server refuses to read."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from ..conftest import EXAMPLES, ROOT
from .conftest import UiServer, wait


@pytest.fixture(scope="module")
def ui() -> Iterator[UiServer]:
    server = UiServer("--dir", str(ROOT))
    yield server
    server.close()


def _ready(browser: Any, url: str) -> None:
    browser.get(url)
    wait(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") ==
         "yes" and d.find_element(By.TAG_NAME, "body").get_attribute("data-connected") == "yes")


def _send(browser: Any, run: int) -> None:
    browser.find_element(By.ID, "ui-send").click()
    wait(browser, lambda d: d.find_element(By.ID, "ui-status").text == f"run #{run}: done")


def _set(browser: Any, element_id: str, text: str) -> None:
    box = browser.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(text)


def test_send_a_request_and_see_the_mutations(browser: Any, ui: UiServer) -> None:
    _ready(browser, ui.url)
    assert Select(browser.find_element(By.ID, "ui-plugin")).first_selected_option.text == \
        "example/myproject.wasm"
    _set(browser, "ui-path", "/items?id=7")
    _send(browser, 1)
    rows = browser.find_elements(By.CSS_SELECTOR, "#stream-0 tr[data-op=add]")
    assert [r.text for r in rows] == ["+ a B2", "+ x-wasm-custom FOO"]
    assert any(r.text.endswith(":path /items?id=7") for r in
               browser.find_elements(By.CSS_SELECTOR, "#stream-0 table.pw-headers tr"))
    # the same traffic from a trace file, then the two runs side by side
    Select(browser.find_element(By.ID, "ui-file")).select_by_visible_text("traces/http_4pkts.json")
    _send(browser, 2)
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.pw-stream[data-stream='1']")) == 1
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".ui-pick")) == 2)
    for box in browser.find_elements(By.CSS_SELECTOR, ".ui-pick"):
        box.click()
    browser.find_element(By.ID, "ui-compare").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".ui-pane h1")) == 2)
    differing = browser.find_elements(By.CSS_SELECTOR, "tr.ui-differs")
    assert any(":path" in r.text and "/items?id=7" in r.text for r in differing)


def test_plugin_output_is_text_in_the_ui_too(browser: Any, ui: UiServer) -> None:
    _ready(browser, ui.url)
    Select(browser.find_element(By.ID, "ui-file")).select_by_index(0)
    _set(browser, "ui-req-headers", "x-evil: <script>window.pwned=1</script>")
    browser.find_element(By.ID, "ui-send").click()
    wait(browser, lambda d: "done" in d.find_element(By.ID, "ui-status").text)
    logs = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#stream-0 tr.pw-event")]
    assert any(t.endswith("[info] x-evil -> <script>window.pwned=1</script>") for t in logs)
    assert browser.execute_script("return window.pwned === undefined")


def _api(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_server_reads_only_the_directories_it_was_given(ui: UiServer) -> None:
    status, files = _api(ui.url + "api/files")
    assert status == 200 and "example/myproject.wasm" in files["plugins"]
    assert "traces/http_4pkts.json" in files["traffic"]
    assert all(not name.startswith(("/", "..")) for name in files["plugins"] + files["traffic"])
    for plugin in ("../../../etc/passwd", "/etc/passwd", "example/../../x.wasm"):
        status, answer = _api(ui.url + "api/runs", {"plugin": plugin})
        assert status == 400
        assert answer == {"error": f"{plugin}: no such file in the directories pwcli ui was "
                                   "given"}
    status, answer = _api(ui.url + "api/runs", {"plugin": "README.md"})
    assert (status, answer) == (400, {"error": "README.md: not a .wasm file"})


def test_watch_runs_again_when_the_plugin_is_rebuilt(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    shutil.copy(EXAMPLES / "as_deny.wasm", tmp_path / "p.wasm")
    server = UiServer("--dir", str(tmp_path), "--watch")
    try:
        with connect(server.url.replace("http", "ws") + "ws", open_timeout=30) as ws:
            status, run = _api(server.url + "api/runs", {
                "plugin": "p.wasm", "root_id": "as_deny", "configuration": "{}",
                "request": {"method": "GET", "path": "/", "headers": "x-deny: 1"}})
            assert (status, run) == (200, {"id": 1})
            first = _until(ws, "done")
            assert first["data"]["report"]["streams"][0]["local_reply"]["status"] == 403
            shutil.copy(EXAMPLES / "myproject.wasm", tmp_path / "p.wasm")  # rebuilt
            again = _until(ws, "done")
            assert again["id"] == 2
            stream = again["data"]["report"]["streams"][0]
            assert stream["local_reply"] is None
            assert [c["name"] for c in stream["header_changes"]] == ["a", "x-wasm-custom"]
    finally:
        server.close()


def _until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message = json.loads(ws.recv(timeout=60))
        if message["type"] == kind:
            return message
