"""The committee pages render in headless Chromium under their Content-Security-Policy with no
violation: every script, style and image they use is local (issue 11, item 3)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.live import CHROMIUM, LiveServer, chromium
from tests.serving.warnings_app import build_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package)"),
]
AS_OF = "2024-12-21"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app, keys = build_app(tmp_path_factory.mktemp("db") / "g.db")
    with LiveServer(app, log_level="warning") as live:
        yield live.url, keys


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-csp"),
                      capabilities={"goog:loggingPrefs": {"browser": "ALL"}})  # fmt: skip
    yield driver
    driver.quit()


def test_pages_render_without_csp_violations(server, browser):
    from selenium.webdriver.common.by import By

    url, keys = server
    made = httpx.post(f"{url}/v1/warnings/propose", json={"as_of": AS_OF},
                      headers={"X-API-Key": keys["committee"]}, timeout=60).json()  # fmt: skip
    browser.get(f"{url}/committee/login")
    browser.find_element(By.NAME, "api_key").send_keys(keys["committee"])
    browser.find_element(By.CSS_SELECTOR, "#login-form button, #login-form [type=submit]").click()
    deadline = time.monotonic() + 30
    while "/committee/login" in browser.current_url:
        assert time.monotonic() < deadline, "login did not leave the form"
        time.sleep(0.1)
    pages = ["/committee", "/committee/warnings", "/committee/warnings/record", f"/committee/warnings/{made[0]['id']}", "/committee/model",
             "/committee/enterprises/E001", "/committee/declarations/D000010"]  # fmt: skip
    violations = []
    for path in pages:
        browser.get(url + path)
        assert browser.find_elements(By.TAG_NAME, "main"), path
        violations += [
            (path, e["message"])
            for e in browser.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
        ]
    assert not violations, violations
    # the chart is there and drawn (its shapes keep their inline colours)
    browser.get(url + f"/committee/warnings/{made[0]['id']}")
    assert browser.find_elements(By.CSS_SELECTOR, "#trend-chart svg > *")
