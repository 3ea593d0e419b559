"""Real servers and a real browser for the tests: uvicorn on a free port, headless Chromium.

``LiveServer`` runs an app in uvicorn on 127.0.0.1 in a background thread (the scoring API, the
committee pages, the security suite); ``chromium`` starts the headless Chromium the page tests
drive through chromedriver.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

CHROMIUM = Path("/usr/bin/chromium")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (bound to port 0 and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self, app: Any, log_level: str = "info") -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level=log_level)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Until ``/readyz`` answers 200 (a model is loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(self.url + "/readyz").status_code == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("server never became ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def chromium(profile: Path, *args: str, capabilities: dict[str, Any] | None = None) -> Any:
    """A headless Chromium WebDriver with its own profile folder (quit it when done).

    Parameters
    ----------
    profile
        The browser profile folder (a fresh temporary folder per test module).
    *args
        Further command-line switches (window size ...).
    capabilities
        WebDriver capabilities to set (e.g. ``goog:loggingPrefs`` for the console log).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args):  # fmt: skip
        opts.add_argument(arg)
    for name, value in (capabilities or {}).items():
        opts.set_capability(name, value)
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    return driver
