"""Debian's headless chromium driven by Selenium, for the browser tests: works offline (no browser
or driver download); skips with the apt-get line when chromium or chromium-driver is missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import need_tool


@contextmanager
def chromium(profile: Path, size: str = "1400,1000") -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: make venv")
    binary = need_tool("chromium", "chromium")
    driver_path = need_tool("chromedriver", "chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new", "--no-sandbox", f"--window-size={size}", "--disable-gpu",
        "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
    ):  # fmt: skip
        opts.add_argument(arg)
    # The Service path keeps Selenium Manager from trying to download a driver (works offline).
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(driver_path))
    try:
        yield driver
    finally:
        driver.quit()
