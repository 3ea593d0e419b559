"""Committee pages in a real headless Chromium against a real uvicorn server on 127.0.0.1.

Walkthrough: sign in with a committee key, list warnings, propose from the form, open the
outbreak's warning, approve it, see it active and the next matching declaration decided
``mandatory``; lift it with a reason; open the model card, a declaration and an enterprise.
A screenshot of each page goes to ``test-output/screenshots/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.decisions import decide
from tests.live import CHROMIUM, LiveServer, chromium
from tests.serving.serving_world import AS_OF, declaration
from tests.serving.warnings_app import build_app, new_declaration

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package)"),
]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    app, keys = build_app(tmp_path_factory.mktemp("db") / "g.db")
    with LiveServer(app, log_level="warning") as live:
        yield app, live.url, keys


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), "--window-size=1280,1600")
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def submit(driver, element) -> None:
    """Click a submit button and wait until the next page has replaced this one."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    element.click()

    def replaced(_driver) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            # Chromium sometimes reports the replaced document's node this way instead
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    WebDriverWait(driver, 30).until(replaced)


def shot(driver, name: str) -> None:
    # full height so the forms and charts are in the picture
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, max(900, min(int(height) + 120, 6000)))
    assert driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_committee_walkthrough(server, browser):
    from selenium.webdriver.common.by import By

    app, base, keys = server
    d = browser
    # any committee page sends a browser without a session to the login form
    d.get(f"{base}/committee/warnings")
    assert "/committee/login" in d.current_url
    shot(d, "01_login")
    d.find_element(By.ID, "api_key").send_keys(keys["committee"])
    submit(d, d.find_element(By.ID, "login-submit"))
    assert d.current_url.endswith("/committee/warnings")
    assert "风险预警" in d.page_source
    cookie = d.get_cookie("gm_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert d.execute_script("return document.cookie").find("gm_session") == -1

    # the form offers the latest day the store holds (never after today), not an empty date
    latest = app.state.warning_tables["declarations"]["declared_at"].max()
    today = pd.Timestamp.now(tz="UTC")
    as_of = d.find_element(By.ID, "as_of")
    assert as_of.get_attribute("value") == str(min(latest, today).date())
    assert as_of.get_attribute("max") == str(today.date())

    # propose from the form (date input: type the ISO date through JS, locale-independent)
    d.execute_script("document.getElementById('as_of').value = '2024-12-21'")
    submit(d, d.find_element(By.CSS_SELECTOR, "#propose-form button"))
    assert "made=" in d.current_url
    links = d.find_elements(By.CSS_SELECTOR, "a.warning-link")
    assert links, "the outbreak should be proposed"
    shot(d, "02_warnings_list")
    target = [a for a in links if "0303/VN" in a.text]
    assert target
    submit(d, target[0])
    assert d.find_element(By.ID, "status").text == "proposed"
    assert d.find_element(By.ID, "trend-chart").find_element(By.TAG_NAME, "svg")
    shot(d, "03_warning_proposed")
    wid = d.current_url.rsplit("/", 1)[-1]

    decl = new_declaration(1)
    measures = app.state.measure_provider
    assert decide(decl, "low", credit_rating=None, measures=measures(), secret="s",
                  monitoring_share=0.0).decision == "release"  # fmt: skip

    d.find_element(By.ID, "approve-reason").send_keys("confirmed by lab results")
    submit(d, d.find_element(By.ID, "approve"))
    assert d.find_element(By.ID, "status").text == "active"
    assert "confirmed by lab results" in d.find_element(By.ID, "transitions").text
    shot(d, "04_warning_active")
    # the office lists it in force in its level's row, named as the committee names levels
    d.get(f"{base}/committee")
    link = d.find_element(By.CSS_SELECTOR, f'#in-force a[href="/committee/warnings/{wid}"]')
    level_cell = link.find_element(By.XPATH, "./ancestor::tr/td[1]").text
    assert re.fullmatch(r"[ⅠⅡⅢⅣ]级 \S+", level_cell), level_cell
    # the nav's search box leaves the sign-out button clear (it covered it at 1280 px with a
    # scroll bar): a gap of a few pixels or another line, at a wide and a narrow window
    size = d.get_window_size()
    for width in (1280, 1000):
        d.set_window_size(width, 800)
        box = d.find_element(By.ID, "nav-search").rect
        out = d.find_element(By.CSS_SELECTOR, "header form button.link").rect
        apart = (box["x"] + box["width"] + 4 <= out["x"]
                 or box["y"] + box["height"] <= out["y"] or out["y"] + out["height"] <= box["y"])  # fmt: skip
        assert apart, (width, box, out)
    d.set_window_size(size["width"], size["height"])
    d.get(f"{base}/committee/warnings/{wid}")
    decision = decide(decl, "low", credit_rating=None, measures=measures(), secret="s",
                      monitoring_share=0.0)  # fmt: skip
    assert decision.decision == "mandatory" and decision.warnings == (wid,)

    # lifting without a passing evaluation and without a reason is refused
    submit(d, d.find_element(By.ID, "lift"))
    assert d.find_element(By.ID, "error-title").text.startswith("409")
    shot(d, "05_lift_refused")
    d.get(f"{base}/committee/warnings/{wid}")
    d.find_element(By.ID, "lift-reason").send_keys("supplier delisted at origin")
    submit(d, d.find_element(By.ID, "lift"))
    assert d.find_element(By.ID, "status").text == "lifted"
    shot(d, "06_warning_lifted")
    assert measures() == []

    d.get(f"{base}/committee/model")
    assert "模型卡" in d.page_source
    shot(d, "07_model_card")
    d.get(f"{base}/committee/declarations/D000010")
    assert "D000010" in d.find_element(By.TAG_NAME, "h1").text
    shot(d, "08_declaration")
    d.get(f"{base}/committee/enterprises/E001")
    assert "E001" in d.find_element(By.TAG_NAME, "h1").text
    shot(d, "09_enterprise")

    # sign out: the session is gone
    submit(d, d.find_element(By.CSS_SELECTOR, "header form button"))
    d.get(f"{base}/committee/warnings")
    assert "/committee/login" in d.current_url
    assert all((SHOTS / f"{n}.png").stat().st_size > 5000 for n in (
        "01_login", "02_warnings_list", "03_warning_proposed", "04_warning_active",
        "07_model_card", "08_declaration", "09_enterprise"))  # fmt: skip


def test_end_to_end_approve_in_the_browser_then_the_api_scores_mandatory(world, tmp_path, browser):
    """The docs/warnings.md walkthrough on the real app (``create_app``): registered champion
    model, scoring API with audit, warnings API and pages, one uvicorn server."""
    import httpx
    from selenium.webdriver.common.by import By

    from serving.app import create_app
    from serving.auth import create_key
    from serving.db import create_schema, make_engine
    from training.plots import calibration_plot, shap_summary_plot

    settings = world.settings(tmp_path / "e2e.db")
    engine = make_engine(settings.database_url)
    create_schema(engine)
    keys = {r: create_key(engine, r)[0] for r in ("inspector", "committee")}
    engine.dispose()
    # the plots training writes next to the bundle (<bundle>.report/), drawn by training's code
    from features.bundle import load_bundle

    bundle = load_bundle(world.bundles["v1"])
    report = Path(str(world.bundles["v1"]) + ".report")
    report.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.6, 400)
    calibration_plot({"random sample": (p, rng.uniform(size=400) < p)}, report / "calibration.png")
    from features.build import build_offline

    feats = build_offline(world.tables)
    X = feats[bundle.feature_names].to_numpy(np.float64)[:200]
    shap_summary_plot(bundle.booster, X, bundle.feature_names, bundle.calibration.a,
                      report / "shap_summary.png")  # fmt: skip

    app = create_app(settings)
    app.state.warning_tables = world.tables
    with LiveServer(app, log_level="warning") as live:
        live.wait_ready(timeout=120)
        base = live.url
        http = httpx.Client(base_url=base, timeout=30)
        committee = {"X-API-Key": keys["committee"]}
        inspector = {"X-API-Key": keys["inspector"]}
        # a warning proposed by hand for the risky enterprise, level Ⅱ (mandatory inspection)
        r = http.post("/v1/warnings/manual", headers=committee, json={
            "subject_kind": "enterprise", "subject_key": world.risky,
            "as_of": AS_OF.isoformat(), "reason": "port intelligence", "level": 2})  # fmt: skip
        assert r.status_code == 201, r.text
        wid = r.json()["id"]
        before = http.post("/v1/score", headers=inspector,
                           json=declaration("e2e-1", enterprise=world.risky)).json()  # fmt: skip
        assert before["warnings"] == []

        d = browser
        d.get(f"{base}/committee/warnings/{wid}")
        d.find_element(By.ID, "api_key").send_keys(keys["committee"])
        submit(d, d.find_element(By.ID, "login-submit"))
        assert d.current_url.endswith(f"/committee/warnings/{wid}")  # back where it started
        assert d.find_element(By.ID, "shap-reasons")  # aggregated reasons from the live model
        shot(d, "e2e_01_warning_proposed")
        submit(d, d.find_element(By.ID, "approve"))
        assert d.find_element(By.ID, "status").text == "active"
        assert d.find_element(By.ID, "trend-chart").find_element(By.TAG_NAME, "svg")
        assert "no inspections in the period" not in d.page_source
        assert d.find_element(By.ID, "shap-reasons")
        shot(d, "e2e_02_warning_active")

        after = http.post("/v1/score", headers=inspector,
                          json=declaration("e2e-2", enterprise=world.risky)).json()  # fmt: skip
        assert after["decision"] == "mandatory" and after["warnings"] == [wid]
        assert after["decision_reason"] == "warning_measure_mandatory"
        other = http.post("/v1/score", headers=inspector,
                          json=declaration("e2e-3", enterprise="E0005")).json()  # fmt: skip
        assert wid not in other["warnings"]

        d.get(f"{base}/committee/model")
        rows = d.find_elements(By.CSS_SELECTOR, "#budget-table-random_sample tr")
        assert len(rows) > 5  # header + model and every baseline at every budget
        assert d.find_elements(By.CSS_SELECTOR, "#tier-table tr")[1:]
        charts = d.find_elements(By.CSS_SELECTOR, "#charts svg")
        assert len(charts) == 4  # precision and critical recall, on both subsets
        shot(d, "e2e_03_model_card")
        decl_id = world.tables["declarations"]["declaration_id"].iloc[-5]
        d.get(f"{base}/committee/declarations/{decl_id}")
        assert d.find_element(By.ID, "waterfall").find_element(By.TAG_NAME, "svg")
        assert "re-explanation" in d.find_element(By.ID, "re-explanation").text.lower()
        assert d.find_element(By.ID, "tier").text in ("high", "elevated", "normal", "low")
        # the declaration scored through the API is shown as it was answered
        d.get(f"{base}/committee/declarations/{after['declaration_id']}")
        assert d.find_element(By.CSS_SELECTOR, ".answered-decision").text == "mandatory"
        assert wid in d.page_source
        d.get(f"{base}/committee/declarations/no-such-declaration")
        assert d.find_element(By.ID, "error-title").text.startswith("404")
        shot(d, "e2e_04_declaration_waterfall")
        d.get(f"{base}/committee/enterprises/{world.risky}")
        assert wid in d.page_source
        shot(d, "e2e_05_enterprise")
