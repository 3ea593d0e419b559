"""The committee's pages in the ``guomen up`` state, crawled in a real headless Chromium.

The state is made by the README's own command (``guomen up --no-serve``, at a small size) in a
fresh home, then served by ``guomen serve`` on a free port, at the real clock. A committee
member signs in and the crawler visits every committee link reachable from the landing page
(breadth first, depth 3): every page must answer 200 with HTML in the site's layout, never an
error page, and log no console error. A screenshot of each page is kept under
``test-output/crawl/``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.live import CHROMIUM, chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package)"),
]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "crawl"
GUOMEN = str(Path(sys.executable).with_name("guomen"))
DEPTH = 3
MAX_PAGES = 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep:
            out[name] = value
    return out


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    """``guomen up`` at 20k declarations, then ``guomen serve``; yields (base URL, keys)."""
    home = tmp_path_factory.mktemp("office")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUOMEN_")}
    env["GUOMEN_HOME"] = str(home)
    up = subprocess.run(
        [GUOMEN, "up", "--declarations", "20000", "--no-serve", "--api-declarations", "120"],
        cwd=home, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    keys = _env_file(home / "data" / "demo-keys.env")
    env.update(_env_file(home / "data" / "secrets.env"))
    port = _free_port()
    log = (home / "serve.log").open("w")
    server = subprocess.Popen(
        [GUOMEN, "serve", "--port", str(port), "--workers", "1"],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (home / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not become ready"
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield base, keys, up.stdout, home
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), "--window-size=1280,1400",
                      capabilities={"goog:loggingPrefs": {"browser": "ALL"}})  # fmt: skip
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    yield driver
    driver.quit()


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", path.strip("/"))[:80] or "root"


def test_every_page_reachable_from_the_landing_page_works(office, browser):
    from selenium.webdriver.common.by import By

    base, keys, up_output, home = office
    assert "committee meetings" in up_output and "scored through POST /v1/score" in up_output
    d = browser
    d.get(f"{base}/committee")
    assert "/committee/login" in d.current_url
    d.find_element(By.ID, "api_key").send_keys(keys["COMMITTEE_KEY"])
    d.find_element(By.ID, "login-submit").click()
    time.sleep(0.5)
    assert urlsplit(d.current_url).path in ("/committee", "/committee/")
    # the office is lived in: decisions waiting, warnings in force, traffic of today
    assert d.find_elements(By.CSS_SELECTOR, "#health-table tr")[1:]
    # a declaration scored through the API by guomen up is shown as it was answered
    with sqlite3.connect(home / "data" / "guomen.db") as db:
        scored_id, decision = db.execute(
            "SELECT declaration_id, decision FROM score_audit ORDER BY id LIMIT 1"
        ).fetchone()
    d.get(f"{base}/committee/declarations/{scored_id}")
    assert d.find_element(By.CSS_SELECTOR, ".answered-decision").text == decision
    d.get(f"{base}/committee/warnings")
    assert d.find_elements(By.CSS_SELECTOR, "a.warning-link"), "the replay left no warnings"
    d.get(f"{base}/committee")
    d.get_log("browser")  # drop the login page's entries

    seen: set[str] = {"/committee"}
    queue: deque[tuple[str, int]] = deque([("/committee", 0)])
    visited: list[tuple[str, int]] = []
    failures: list[str] = []
    while queue and len(visited) < MAX_PAGES:
        path, depth = queue.popleft()
        d.get(base + path)
        status = d.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return n ? n.responseStatus : null"
        )
        ctype = d.execute_script("return document.contentType")
        errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
        if status != 200 or ctype != "text/html" or errors or d.find_elements(By.ID, "error-title"):
            failures.append(f"{path}: status {status}, {ctype}, console {errors[:2]}")
        if not d.find_elements(By.CSS_SELECTOR, "header.top"):
            failures.append(f"{path}: not in the site's layout")
        assert d.save_screenshot(str(SHOTS / f"{len(visited):03d}_{_slug(path)}.png"))
        visited.append((path, depth))
        if depth >= DEPTH:
            continue
        for a in d.find_elements(By.CSS_SELECTOR, "a[href]"):
            href = a.get_attribute("href") or ""
            parts = urlsplit(href)
            if parts.netloc != urlsplit(base).netloc or not parts.path.startswith("/committee"):
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if target not in seen and not parts.path.startswith("/committee/static"):
                seen.add(target)
                queue.append((target, depth + 1))
    assert not failures, "\n".join(failures[:20])
    paths = [p for p, _ in visited]
    for prefix in ("/committee/warnings?", "/committee/warnings/W", "/committee/model",
                   "/committee/declarations/", "/committee/search"):  # fmt: skip
        assert any(p.startswith(prefix) for p in paths), (prefix, paths[:50])
    assert len(visited) < MAX_PAGES or not queue, "the crawl was cut short"
    print(f"crawled {len(visited)} pages, {len(seen)} links seen, depth {DEPTH}")


def test_error_pages_are_html_in_the_layout(office, browser):
    from selenium.webdriver.common.by import By

    base, _, _, _ = office
    d = browser  # signed in by the crawl
    for path, status in (("/committee/declarations/NO-SUCH", "404"),
                         ("/committee/warnings/W-NO-SUCH", "404"),
                         ("/committee/no/such/page", "404"),
                         ("/committee/warnings?level=abc", "422")):  # fmt: skip
        d.get(base + path)
        assert d.execute_script("return document.contentType") == "text/html"
        assert d.find_element(By.ID, "error-title").text.startswith(status), path
        assert d.find_elements(By.CSS_SELECTOR, "header.top nav")  # signed in: the navigation
    r = httpx.get(base + "/committee/declarations/NO-SUCH")  # no session: to the login form
    assert r.status_code == 303 and r.headers["location"].startswith("/committee/login?next=")
