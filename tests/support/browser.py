"""A headless Chromium (Debian's chromium + chromedriver) driven by selenium, for the pages' tests."""

# Nothing is downloaded: the driver is /usr/bin/chromedriver, given explicitly, and the
# browser runs with a fresh profile and its background networking off. Every call blocks:
# tests run them in a thread, so the reactor (and the fake upstream on it) keeps answering.

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
]
DESKTOP = (1280, 900)
PHONE = (390, 844)


def require_chromium() -> None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")


class Browser:
    """One headless Chromium; screenshots land in ``shots`` (the test's temporary directory)."""

    def __init__(self, profile: Path, shots: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
        self.shots = shots
        self.profile = profile
        shots.mkdir(parents=True, exist_ok=True)
        # No selenium manager: the driver is given, and nothing is reported anywhere.
        os.environ["SE_AVOID_STATS"] = "true"
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def wait_for(self, condition, timeout: float = 30.0):
        """Wait until ``condition(driver)`` is true (a form's POST and its redirect take a moment)."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        # An element found on the page being left goes stale: that is "not yet", not a failure.
        return WebDriverWait(self.driver, timeout,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)

    def wait_css(self, selector: str, timeout: float = 30.0):
        """The elements matching ``selector`` once there are any: a click that submits a form
        returns before the next page has loaded, so what it shows has to be waited for."""
        return self.wait_for(lambda driver: self.css(selector), timeout)

    def wait_url(self, url: str, timeout: float = 30.0) -> None:
        """Wait until the browser is on ``url`` (a link or a form followed, its redirect done)."""
        self.wait_for(lambda driver: driver.current_url == url, timeout)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def screenshot(self, name: str) -> list[Path]:
        """The whole page, on a desktop, on a phone, and on a phone in dark mode."""
        taken = []
        for label, (width, height), mobile, scheme in (
            ("desktop", DESKTOP, False, "light"),
            ("phone", PHONE, True, "light"),
            ("phone-dark", PHONE, True, "dark"),
        ):
            cdp = self.driver.execute_cdp_cmd
            cdp("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})
            cdp("Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
            content = cdp("Page.getLayoutMetrics", {})["cssContentSize"]
            full = min(int(content["height"]) + 1, 6000)
            cdp("Emulation.setDeviceMetricsOverride",
                {"width": width, "height": max(height, full), "deviceScaleFactor": 1, "mobile": mobile})
            path = self.shots / f"{name}-{label}.png"
            self.driver.save_screenshot(str(path))
            taken.append(path)
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        self.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        return taken

    def quit(self) -> None:
        self.driver.quit()


def open_browser(tmp_path: Path) -> Browser:
    """A fresh browser for one test (skips it where chromium is not installed)."""
    require_chromium()
    return Browser(tmp_path / "chromium-profile", tmp_path / "screenshots")


def close_browser(browser: Browser) -> None:
    browser.quit()
    shutil.rmtree(browser.profile, ignore_errors=True)
