"""Headless Chromium (Debian's package) driven through chromedriver, for the status page tests."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from dashcache.bench.launcher import celery_env
from dashcache.config import Settings
from dashcache.redis_server import free_port
from tests.processes import Process

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1500",
)
FIELDS_SCRIPT = """
const shown = {};
for (const element of document.querySelectorAll("[data-field]")) {
  if (!(element.dataset.field in shown)) shown[element.dataset.field] = element.textContent;
}
return shown;
"""


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile; skipped when missing, unless REQUIRE_SERVICES=1."""
    binary, driver_binary = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver_binary is None:
        message = "chromium and chromium-driver are not installed (apt-get install them)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(message)
    profile = tempfile.mkdtemp(prefix="dashcache-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_binary))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def status_server(settings: Settings) -> Iterator[str]:
    """`dashcache status serve` on a free port; yields its base URL."""
    port = free_port()
    dashcache = str(Path(sys.executable).with_name("dashcache"))
    server = Process([dashcache, "status", "serve", "--port", str(port)], celery_env(settings))
    try:
        server.wait_for("status.serving")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def shown_fields(driver: webdriver.Chrome) -> dict[str, str]:
    """The text of every element with a `data-field` (the first of each name)."""
    fields: dict[str, Any] = driver.execute_script(FIELDS_SCRIPT)
    return {name: str(text) for name, text in fields.items()}
