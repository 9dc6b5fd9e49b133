"""A real headless browser for tests: Debian's chromium, driven by selenium through Debian's chromedriver.

``make browser`` installs both with apt (as root; CI runs it). A test takes the :func:`browser` fixture
(``from tests.browser import browser``; ``tests/test_leaderboard.py`` does); where chromium or chromedriver
is missing it is skipped, except in CI (``CI=true``), where it fails, so that CI cannot go green without it."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI

#: Debian's packages: chromium, and chromium-driver (its chromedriver, of the same version)
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def headless_chromium(width: int = 1400, height: int = 1000):
    """A selenium Chrome WebDriver on Debian's chromium, headless, with a ``width`` x ``height`` window.

    Browser and driver are given by path (the driver through ``Service(executable_path=...)``), so selenium-manager
    never runs and nothing is downloaded. ``--no-sandbox``: chromium's sandbox refuses to start as root (CI);
    ``--disable-dev-shm-usage``: a container's /dev/shm is too small for its shared memory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


def _skip_or_fail(message: str) -> None:
    """Skip the test, except in CI, where a missing browser is a broken setup: fail it."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: failing instead of skipping)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A :func:`headless_chromium` driver shared by a module's tests, quit after them."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        _skip_or_fail(f"needs Debian's chromium and chromium-driver ({', '.join(missing)} missing): "
                      "`make browser` installs them (as root)")
    try:
        import selenium.webdriver  # noqa: F401
    except ImportError as exc:
        _skip_or_fail(f"needs selenium (in requirements/lock.txt; `make setup` installs it): {exc}")
    driver = headless_chromium()
    try:
        yield driver
    finally:
        driver.quit()
