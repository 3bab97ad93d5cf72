"""Drive the demo app in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``), with Selenium.

Why in the package: the browser test (``tests/test_app_browser.py``) and the latency/screenshot benchmark
(``benchmarks/app.py``) do the same clicks on the same page; this is the one place that knows the page.
No browser is ever downloaded: the binaries must be on the machine (``apt-get install chromium
chromium-driver``); :func:`find_chromium` says what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver",)
# flags that work on a closed network as root: no sandbox, no GPU, no background connections
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")


def find_chromium() -> tuple[str | None, str | None, str]:
    """``(chromium, chromedriver, reason)``: the binaries, or ``None`` with why (for a test's skip)."""
    chromium = next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None) or shutil.which("chromium")
    driver = next((p for p in CHROMEDRIVER_CANDIDATES if os.access(p, os.X_OK)), None) or \
        shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver", driver)) if path is None]
    reason = "" if not missing else (f"{' and '.join(missing)} not installed (apt-get install -y chromium "
                                     "chromium-driver; `make test` does it where it runs as root)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        reason = reason or "selenium is not installed (pip install -e '.[dev]' in the checkout)"
    return chromium, driver, reason


def chromium_version(chromium: str) -> str:
    """``"chromium 150.0.7871.100"`` from ``chromium --version``."""
    out = subprocess.run([chromium, "--version"], capture_output=True, text=True, timeout=60).stdout
    words = out.split()
    version = next((w for w in words if w[:1].isdigit()), out.strip())
    return f"chromium {version}"


@contextmanager
def chromium_driver(width: int = 1400, height: int = 1600) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile folder, quit and removed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path, reason = find_chromium()
    if reason:
        raise RuntimeError(reason)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser or driver
    profile = tempfile.mkdtemp(prefix="hf-simcit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Click Recommend and note when #recommendations first holds a new table (page clock, milliseconds).
ANSWER_TIMER = """
const target = document.querySelector('#recommendations');
window.__hfSimcitAnswerMs = null;
const clicked = performance.now();
const observer = new MutationObserver(() => {
  if (target.querySelector('table.rec-table tbody tr')) {
    window.__hfSimcitAnswerMs = performance.now() - clicked;
    observer.disconnect();
  }
});
observer.observe(target, {childList: true, subtree: true, characterData: true});
document.querySelector('#recommend-button').click();
"""


class AppPage:
    """The app's page, by the ``elem_id`` s of :mod:`hf_simcit.app.ui`; every wait has a timeout."""

    def __init__(self, driver: Any, url: str, timeout: float = 60.0):
        self.driver, self.url, self.timeout = driver, url, timeout

    def open(self) -> AppPage:
        self.driver.get(self.url)
        self._wait(lambda d: d.find_elements("css selector", "#search-button"))
        return self

    # -------------------------------------------------------------------------------------------- helpers
    def _wait(self, condition, timeout: float | None = None):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout or self.timeout, poll_frequency=0.02).until(condition)

    def _find(self, css: str):
        return self.driver.find_element("css selector", css)

    def _text_input(self, elem_id: str):
        return self._find(f"#{elem_id} textarea, #{elem_id} input")

    def _click(self, elem_id: str) -> None:
        self._find(f"#{elem_id}").click()

    def status(self) -> str:
        return self._find("#status").text

    def _wait_status(self, starts: str) -> str:
        return self._wait(lambda d: self.status() if self.status().startswith(starts) else False)

    # -------------------------------------------------------------------------------------------- actions
    def search(self, query: str) -> list[str]:
        """Type ``query``, press Search; the labels of the matches."""
        box = self._text_input("search")
        box.clear()
        box.send_keys(query)
        self._click("search-button")
        self._wait(lambda d: f"for {query!r}" in self.status())
        return [label.text for label in self.driver.find_elements("css selector", "#search-results label")]

    def pick(self, text: str) -> list[str]:
        """Select the first match whose label contains ``text``, press Add to picks; the picked labels."""
        labels = [label for label in self.driver.find_elements("css selector", "#search-results label")
                  if text in label.text]
        if not labels:
            raise AssertionError(f"no search result contains {text!r}")
        labels[0].click()
        before = len(self.picks())
        self._click("pick-button")
        self._wait(lambda d: len(self.picks()) == before + 1)
        return self.picks()

    def picks(self) -> list[str]:
        return [li.text for li in self.driver.find_elements("css selector", "#picks li")]

    def clear_picks(self) -> None:
        self._click("clear-button")
        self._wait_status("picks cleared")

    def recommend(self) -> tuple[list[list[str]], float]:
        """Press Recommend; the table's rows (cells as text) and the seconds from the click until the page
        shows the answer, measured by the page's own clock (a MutationObserver), without WebDriver overhead."""
        self.driver.execute_script(ANSWER_TIMER)
        self._wait_status("top ")
        elapsed = self._wait(lambda d: d.execute_script("return window.__hfSimcitAnswerMs"))
        return self.recommendation_rows(), float(elapsed) / 1000.0

    def recommendation_rows(self) -> list[list[str]]:
        rows = self.driver.execute_script(
            "return [...document.querySelectorAll('#recommendations table.rec-table tbody tr')]"
            ".map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()))")
        return [row for row in rows if any(row)]

    def add_item(self, text: str) -> str:
        """Type a new item's text, press Add new item; the cold-start panel's text."""
        box = self._text_input("new-text")
        box.clear()
        box.send_keys(text)
        self._click("add-item-button")
        self._wait(lambda d: "new item placed" in self.status() or "Cannot add" in self._find("#cold-start").text)
        return self._find("#cold-start").text

    def screenshot(self, path: str | Path) -> Path:
        """A PNG of the whole page (the window is resized to the page's height first)."""
        for _ in range(4):  # the layout may grow once the window is taller: resize until it all fits
            inner, needed = self.driver.execute_script(
                "return [window.innerHeight, Math.max(document.body.scrollHeight, "
                "document.documentElement.scrollHeight)]")
            if inner >= needed:
                break
            size = self.driver.get_window_size()
            self.driver.set_window_size(size["width"], size["height"] + int(needed) - int(inner) + 20)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path
