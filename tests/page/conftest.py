"""A real headless Chromium (the OS's package, driven by selenium through the OS's
chromedriver), started once for the page tests; they skip, saying why, where it is missing.

Nothing is downloaded: selenium is given the browser and the driver's paths, and Chromium
runs with background networking, component updates and sync off, in a fresh profile.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARGUMENTS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,900",
)
# Recorded before any page script could run: an alert() would land here, not block.
CATCH_ALERTS = "window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m));"


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing or shutil.which("chromium") is None:
        pytest.skip(
            f"no headless browser here ({', '.join(missing) or 'chromium'} missing): "
            "apt-get install chromium chromium-driver (.ci/run does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_ALERTS})
    try:
        yield driver
    finally:
        driver.quit()


class Opened:
    """A page open in the browser, with what the tests read from it."""

    def __init__(self, driver: WebDriver, path: Path) -> None:
        self.driver = driver
        driver.get_log("browser")  # drop what earlier pages logged
        driver.get(path.resolve().as_uri())

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self, css: str) -> str:
        return str(self.js("return document.querySelector(arguments[0]).textContent", css))

    def texts(self, css: str) -> list[str]:
        found = self.js(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", css
        )
        return [str(t) for t in found]

    def numbers(self, css: str) -> dict[str, str]:
        """The ``dt``/``dd`` pairs of the numbers beside a chart (or the headline)."""
        pairs = self.js(
            "return [...document.querySelectorAll(arguments[0] + ' dt')]"
            ".map(dt => [dt.textContent.trim(), dt.nextElementSibling.textContent.trim()])",
            css,
        )
        return {str(name): str(value) for name, value in pairs}

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]
