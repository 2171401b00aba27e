"""A real headless browser (Debian's ``chromium`` driven by ``chromium-driver`` through
selenium) for the web UI's tests and its benchmark."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.harness.needs import require

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Root needs --no-sandbox; the rest keeps the browser from calling home or updating itself.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A selenium WebDriver for a fresh headless chromium with its own profile directory."""
    present = os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)
    require(present, "chromium and chromium-driver (scripts/deps.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium fetch a driver
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Deadlines bound a hang: a loaded machine (CI) can take many seconds to load and render a page.
def wait_js(driver: Any, script: str, what: str, timeout: float = 60.0) -> Any:
    """Polls ``script`` (a JavaScript expression's body, ``return ...``) until it is truthy."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last value {value!r}")


def wait_text(driver: Any, selector: str, predicate: Callable[[str], bool], what: str,
              timeout: float = 60.0) -> str:
    """The text of the first element matching ``selector`` once ``predicate`` holds for it."""
    script = (f"const e = document.querySelector({selector!r}); "
              "return e ? e.innerText : null;")
    deadline = time.monotonic() + timeout
    text: str | None = None
    while time.monotonic() < deadline:
        text = driver.execute_script(script)
        if text is not None and predicate(text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} in {selector}; last text {text!r}")
