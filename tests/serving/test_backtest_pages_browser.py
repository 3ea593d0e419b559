"""The committee's backtest pages in a real headless Chromium against a real uvicorn server.

The run shown is a real replay of the tiny world with a model policy (so the page has the AUC
table and every chart), written at the real clock: sign in, find the run in the list, open it,
and check that the tables are filled, every chart is drawn by the browser and the page breaks
no Content-Security-Policy rule. Screenshots go to ``test-output/screenshots/``.

``GUOMEN_BACKTEST_PAGE_RUNS=DIR`` adds the finished runs under ``DIR`` (for instance the
benchmark's, ``/tmp/bench-backtest2``): their reports and charts are copied in and every one of
them is opened and checked the same way.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving.app import create_app
from tests.live import CHROMIUM, chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package)"),
]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
RUN = "tiny-2026q1"
POLICIES = ("random", "legacy", "exploit")


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory) -> Path:
    """A backtests folder with one real run of the tiny world (three policies, one of them
    trained and retrained on its own selections)."""
    from tests.training.backtest.tiny_world import write_tiny_store
    from training.backtest import BacktestSpec, parse_policy, run_backtest

    root = tmp_path_factory.mktemp("bt-browser")
    store, truth = write_tiny_store(root / "world")
    spec = BacktestSpec(start="2026-01-01", end="2026-02-28", warnings_step_days=0,
                        held_aside_share=0.5)  # fmt: skip
    runs = root / "backtests"
    run_backtest(store, runs / RUN, spec, [parse_policy(p) for p in POLICIES],
                 ground_truth=truth)  # fmt: skip
    extra = os.environ.get("GUOMEN_BACKTEST_PAGE_RUNS")
    for folder in sorted(Path(extra).iterdir()) if extra else []:
        if (folder / "backtest.json").is_file():  # the report and its charts, not the state
            shutil.copytree(folder, runs / folder.name, ignore=shutil.ignore_patterns("state"))
    return runs


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-backtests"), "--window-size=1280,1600",
                      capabilities={"goog:loggingPrefs": {"browser": "ALL"}})  # fmt: skip
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _shot(driver, name: str) -> None:
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, max(900, min(int(height) + 120, 6000)))
    assert driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_backtest_pages_in_the_browser(world, tmp_path, finished_runs, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings = world.settings(tmp_path / "pages.db", backtests_dir=finished_runs)
    keys = world.make_keys(settings)
    d = browser
    with world.live_server(create_app(settings)) as server:
        server.wait_ready()
        d.get(f"{server.url}/committee/backtests")
        assert "/committee/login" in d.current_url  # no session: the login form first
        d.find_element(By.ID, "api_key").send_keys(keys["committee"])
        d.find_element(By.ID, "login-submit").click()
        WebDriverWait(d, 30).until(lambda drv: drv.current_url.endswith("/committee/backtests"))

        rows = d.find_elements(By.CSS_SELECTOR, "#backtest-runs tr")
        names = [r.find_element(By.TAG_NAME, "td").text for r in rows[1:]]
        assert sorted(names) == sorted(p.name for p in finished_runs.iterdir())
        assert names[0] == RUN  # newest first
        cells = [c.text for c in rows[1].find_elements(By.TAG_NAME, "td")]
        assert cells[0] == RUN and cells[4] == "truth"
        assert cells[5] == ", ".join(POLICIES)
        # written just now, at the real clock (not at the data's dates)
        written = datetime.fromisoformat(cells[7])
        assert abs((datetime.now(UTC) - written).total_seconds()) < 3600
        _shot(d, "20_backtests_list")

        d.find_element(By.CSS_SELECTOR, "a.backtest-link").click()
        WebDriverWait(d, 30).until(lambda drv: drv.current_url.endswith(f"/backtests/{RUN}"))
        totals = _check_run_page(d)
        found = {r.find_element(By.TAG_NAME, "code").text:
                 float(r.find_elements(By.TAG_NAME, "td")[2].text.replace(",", ""))
                 for r in totals}  # fmt: skip
        assert list(found) == list(POLICIES)
        assert found["exploit"] > found["random"]
        assert len(d.find_elements(By.CSS_SELECTOR, "#backtest-auc tr")) == 3  # Jan, Feb
        _shot(d, "21_backtest_run")
        for name in names[1:]:  # any real runs added
            d.get(f"{server.url}/committee/backtests/{name}")
            _check_run_page(d)
            _shot(d, f"22_backtest_{name}")
        refused = [e["message"] for e in d.get_log("browser")
                   if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]  # fmt: skip
        assert not refused, refused


def _check_run_page(d) -> list:
    """The run page's universe note, totals, AUC table and charts; returns the totals rows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert "Universe: " in d.find_element(By.ID, "universe-note").text
    totals = d.find_elements(By.CSS_SELECTOR, "#backtest-totals tr")[1:]
    assert totals
    auc_rows = d.find_elements(By.CSS_SELECTOR, "#backtest-auc tr")[1:]
    assert auc_rows
    for r in auc_rows:  # the last column is a model policy: its AUC, or "–" for a gap
        last = r.find_elements(By.TAG_NAME, "td")[-1].text
        assert last == "–" or 0.5 < float(last) <= 1
    images = d.find_elements(By.CSS_SELECTOR, "img.chart")
    assert len(images) == 4
    for img in images:  # each SVG fetched with the session and drawn by the browser
        WebDriverWait(d, 30).until(
            lambda drv, img=img: drv.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", img
            )
        )
    return totals
