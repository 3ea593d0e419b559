"""The committee's backtest pages against a real uvicorn server, reading a real finished run."""

from __future__ import annotations

import re

import httpx
import pytest

from serving.app import create_app


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A backtests folder holding one real run of the tiny world (policies without a model,
    so it takes seconds) and one folder that is not a run."""
    from tests.training.backtest.tiny_world import write_tiny_store
    from training.backtest import BacktestSpec, parse_policy, run_backtest

    root = tmp_path_factory.mktemp("bt-pages")
    store, truth = write_tiny_store(root / "world")
    spec = BacktestSpec(start="2026-01-01", end="2026-02-28", warnings_step_days=0)
    runs = root / "backtests"
    run_backtest(store, runs / "tiny-q1", spec, [parse_policy("random"), parse_policy("legacy")],
                 ground_truth=truth)  # fmt: skip
    (runs / "not-a-run").mkdir()
    return runs


@pytest.fixture()
def site(world, tmp_path, finished_runs):
    settings = world.settings(tmp_path / "pages.db", backtests_dir=finished_runs)
    keys = world.make_keys(settings)
    with world.live_server(create_app(settings)) as server:
        server.wait_ready()
        with httpx.Client(base_url=server.url) as http:
            yield http, keys


def _sign_in(http: httpx.Client, key: str) -> None:
    page = http.get("/committee/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = http.post("/committee/login", data={"api_key": key, "csrf": token,
                  "next": "/committee/backtests"})  # fmt: skip
    assert r.status_code == 303, r.text


def test_backtest_pages_list_runs_and_show_their_charts(site) -> None:
    http, keys = site
    r = http.get("/committee/backtests")
    assert r.status_code == 303 and r.headers["location"].startswith("/committee/login")
    _sign_in(http, keys["committee"])
    listing = http.get("/committee/backtests")
    assert listing.status_code == 200
    assert 'href="/committee/backtests/tiny-q1"' in listing.text
    assert "not-a-run" not in listing.text
    assert 'id="nav-backtests"' in listing.text
    page = http.get("/committee/backtests/tiny-q1")
    assert page.status_code == 200
    assert "Universe: truth" in page.text and "<code>legacy</code>" in page.text
    charts = re.findall(r'<img src="(/committee/backtests/tiny-q1/charts/[^"]+\.svg)"', page.text)
    assert len(charts) == 4
    svg = http.get(charts[0])
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")


def test_backtest_pages_refuse_what_is_not_a_listed_run_or_chart(site) -> None:
    http, keys = site
    _sign_in(http, keys["committee"])
    assert http.get("/committee/backtests/not-a-run").status_code == 404
    assert http.get("/committee/backtests/..%2Fbacktests").status_code == 404
    assert http.get("/committee/backtests/tiny-q1/charts/backtest.json").status_code == 404
    assert http.get("/committee/backtests/tiny-q1/charts/..%2Fbacktest.json").status_code == 404
    assert http.get("/committee/backtests/tiny-q1/charts/nope.svg").status_code == 404
