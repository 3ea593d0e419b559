"""``guomen plan`` and ``guomen disclose`` through the CLI on a real ingested demo store.

The demo data end about a month before the real clock (the generator dates its data up to
today), so the last closed quarter always has results; the stored warnings are real rows of
the serving database.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.build import final_inspections
from policy.disclosure import parse_period
from policy.plan import wilson_interval

runner = CliRunner()


def said(output: str) -> str:
    """The command's output with rich's box drawing and line wraps removed."""
    return " ".join(output.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.generate import write_demo_data
    from features.ingest import ingest

    root = tmp_path_factory.mktemp("plan-demo")
    write_demo_data(root / "demo", 20_000, seed=5)
    ingest(root / "demo", root / "store")
    return root


@pytest.fixture()
def env(demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from guomen.settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GUOMEN_HOME", str(tmp_path))
    monkeypatch.setenv("GUOMEN_STORE_DIR", str(demo_store / "store"))
    monkeypatch.setenv("GUOMEN_DATABASE_URL", f"sqlite:///{tmp_path / 'guomen.db'}")
    get_settings.cache_clear() if hasattr(get_settings, "cache_clear") else None
    return tmp_path


def last_closed_quarter(now: pd.Timestamp, tz: str) -> str:
    local = now.tz_convert(tz)
    q = (local.month - 1) // 3  # the current quarter's index 0..3; the previous one closed
    year = local.year if q > 0 else local.year - 1
    return f"{year}-Q{q if q > 0 else 4}"


def test_plan_command_writes_the_documents_and_stores_a_proposal(env: Path) -> None:
    from guomen.cli import app
    from serving.db import make_engine
    from serving.plan_store import get_plan, list_plans

    year = pd.Timestamp.now(tz="UTC").year + 1
    r = runner.invoke(app, ["plan", "--year", str(year), "--samples", "2000", "--out", "out"])
    assert r.exit_code == 0, r.output
    assert "past random results only" in r.output  # no rescoring run in this folder
    folder = env / "out" / str(year)
    zh = (folder / "plan.zh.md").read_text(encoding="utf-8")
    en = (folder / "plan.en.md").read_text(encoding="utf-8")
    assert f"{year} 年度风险监测计划" in zh and "底数" in zh
    assert f"Risk-monitoring plan {year}" in en and "floor" in en
    rows = list(csv.DictReader(io.StringIO((folder / "plan.csv").read_text(encoding="utf-8"))))
    assert sum(int(x["quota"]) for x in rows) == 2000
    assert all(int(x["floor"]) >= 1 for x in rows)
    assert all(x["reason_zh"] and x["reason_en"] for x in rows)
    ports = list(csv.DictReader(io.StringIO((folder / "plan_ports.csv").read_text("utf-8"))))
    assert sum(int(x["quota"]) for x in ports) == 2000
    engine = make_engine(f"sqlite:///{env / 'guomen.db'}")
    [stored] = list_plans(engine)
    assert stored["status"] == "proposed" and stored["year"] == year
    _, lines = get_plan(engine, stored["id"])
    assert int(lines["quota"].sum()) == 2000 and len(lines) == len(rows)


def test_plan_command_refuses_too_few_samples(env: Path) -> None:
    from guomen.cli import app

    r = runner.invoke(app, ["plan", "--year", "2027", "--samples", "3", "--out", "out"])
    assert r.exit_code != 0
    assert "raise --samples" in said(r.output)


def test_disclosure_matches_the_stored_results_exactly(env: Path, demo_store: Path) -> None:
    from features.store import Store
    from guomen.cli import app

    tz = "Asia/Shanghai"
    period = last_closed_quarter(pd.Timestamp.now(tz="UTC"), tz)
    r = runner.invoke(app, ["disclose", "--period", period, "--out", "pub"])
    assert r.exit_code == 0, r.output
    report = json.loads((env / "pub" / f"disclosure-{period}.json").read_text("utf-8"))
    # an independent count from the store: every final random result of the period, one by one
    tables = Store(demo_store / "store").tables()
    p = parse_period(period, tz)
    decl = tables["declarations"].set_index("declaration_id")
    expected: dict[tuple[str, str], list[int]] = {}
    hazards: dict[tuple[str, str], dict[str, int]] = {}
    for row in final_inspections(tables["inspections"]).itertuples(index=False):
        if row.selection != "random" or not (p.start <= row.inspected_at < p.end):
            continue
        d = decl.loc[row.declaration_id]
        key = (str(d["hs_code"])[:2], str(d["origin_country"]))
        c = expected.setdefault(key, [0, 0])
        c[0] += 1
        if row.result == "nonconforming":
            c[1] += 1
            h = hazards.setdefault(key, {})
            name = row.hazard_type if isinstance(row.hazard_type, str) else "unrecorded"
            h[name] = h.get(name, 0) + 1
    assert expected, "the demo has random results in the last closed quarter"
    got = {(g["product"], g["origin_country"]): g for g in report["groups"]}
    assert set(got) == set(expected)
    for key, (n, k) in expected.items():
        g = got[key]
        assert (g["samples"], g["nonconforming"]) == (n, k)
        lo, hi = wilson_interval(k, n)
        assert g["rate"] == k / n and (g["ci_low"], g["ci_high"]) == (lo, hi)
        top = sorted(hazards.get(key, {}).items(), key=lambda x: (-x[1], x[0]))[:3]
        assert [(h["hazard_type"], h["count"]) for h in g["hazard_types"]] == top
    assert report["totals"]["samples"] == sum(n for n, _ in expected.values())
    lines = (env / "pub" / f"disclosure-{period}.csv").read_text("utf-8").splitlines()
    assert len(lines) == 1 + len(expected)
    page = (env / "pub" / f"disclosure-{period}.html").read_text("utf-8")
    assert "<script" not in page and "http" not in page.replace("https://", "")


def test_disclosure_of_an_open_period_is_refused(env: Path) -> None:
    from guomen.cli import app

    now = pd.Timestamp.now(tz="Asia/Shanghai")
    r = runner.invoke(app, ["disclose", "--period", f"{now.year}-Q{(now.month - 1) // 3 + 1}"])
    assert r.exit_code != 0 and "only a closed period" in said(r.output)
    r = runner.invoke(app, ["disclose", "--period", "2026-Q5"])
    assert r.exit_code != 0 and "YYYY-Qn" in said(r.output)


def test_plan_reads_the_rescored_probabilities(env: Path, demo_store: Path) -> None:
    """A rescoring run's ``scored/`` parts give each group its model rate: the group the model
    finds risky gets risk samples beyond its floor."""
    from features.store import Store
    from guomen.cli import app

    decl = Store(demo_store / "store").tables()["declarations"]
    risky = decl["hs_code"].astype("str").str.startswith("04")
    run = env / "data" / "rescore" / "2026-11-30" / "scored"
    run.mkdir(parents=True)
    pd.DataFrame(
        {
            "declaration_id": decl["declaration_id"].astype("str"),
            "probability": risky.map({True: 0.30, False: 0.01}).astype("float64"),
        }
    ).to_parquet(run / "part-00000.parquet")
    r = runner.invoke(app, ["plan", "--year", "2027", "--samples", "2000", "--out", "out"])
    assert r.exit_code == 0, r.output
    assert "past random results only" not in r.output
    lines = pd.read_csv(env / "out" / "2027" / "plan.csv", dtype={"product": "str"})
    ch04 = lines[lines["product"] == "04"]
    other = lines[lines["product"] != "04"]
    assert (
        ch04["model_rate"].round(6).eq(0.30).all() and other["model_rate"].round(6).eq(0.01).all()
    )
    assert (ch04["risk"] / ch04["volume"]).mean() > 3 * (other["risk"] / other["volume"]).mean()
    assert ch04["reason_en"].str.contains("model's expected nonconformity 30.00%").all()
