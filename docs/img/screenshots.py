"""Make the README's screenshots: the HTML report of the example, and pwcli ui after sending a
request through it. Needs the test extra and Debian's chromium and chromium-driver.

    python docs/img/screenshots.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def main() -> None:
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--hide-scrollbars"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 30)
    try:
        report = HERE / "report.html"
        with open(report, "w") as out:
            subprocess.run([sys.executable, "-m", "pwcli", "replay", "traces/http_4pkts.json",
                            "--wasm", "example/myproject.wasm", "--format", "html"],
                           cwd=ROOT, stdout=out, check=True)
        driver.get(report.as_uri())
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "section.pw-stream"))
        driver.save_screenshot(str(HERE / "report.png"))
        report.unlink()
        ui = subprocess.Popen([sys.executable, "-m", "pwcli", "ui", "--no-browser", "--port",
                               "0", "--dir", str(ROOT)], stderr=subprocess.PIPE, text=True)
        try:
            assert ui.stderr is not None
            url = re.search(r"(http://\S+/)", ui.stderr.readline()).group(1)  # type: ignore[union-attr]
            driver.get(url)
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute(
                "data-connected") == "yes" and d.find_element(By.TAG_NAME, "body")
                .get_attribute("data-ready") == "yes")
            driver.find_element(By.ID, "ui-send").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-op=add]"))
            driver.save_screenshot(str(HERE / "ui.png"))
        finally:
            ui.terminate()
            ui.wait()
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
