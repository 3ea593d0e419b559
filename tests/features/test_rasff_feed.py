"""Worked example of issue 19: a RASFF-like export loads through docs/examples/rasff_mapping.yaml,
end to end through ``guomen ingest --mapping`` (the CLI's own app object)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from demo.generate import write_demo_data
from demo.rasff import COLUMNS, PRODUCTS, Burst, rasff_rows, write_rasff_feed
from features.countries import CountryNames
from features.store import Store
from guomen.cli import app

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "docs" / "examples" / "rasff_mapping.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rasff")
    write_demo_data(root / "demo", 20_000, seed=4)
    return root


@pytest.fixture(scope="module")
def loaded(world: Path) -> tuple[Path, dict, str]:
    """The demo world ingested, then the feed alone through the mapping, both by the CLI."""
    feed = world / "feed"
    write_rasff_feed(feed / "rasff_notifications.csv", world / "demo", seed=9)
    store = world / "store"
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", str(world / "demo"), "--store", str(store)])
    assert first.exit_code == 0, first.output
    out = runner.invoke(
        app, ["ingest", str(feed), "--store", str(store), "--mapping", str(MAPPING)]
    )
    assert out.exit_code == 0, out.output
    report = Store(store).reports()[-1]
    return store, report, out.output


def test_feed_looks_like_a_rasff_export(world: Path) -> None:
    path = world / "look" / "rasff_notifications.csv"
    n = write_rasff_feed(path, world / "demo", seed=3)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert tuple(df.columns) == COLUMNS and len(df) == n > 500
    assert df["notification date"].str.fullmatch(r"\d{2}-\d{2}-\d{4}").all()
    assert df["reference"].is_unique
    # the feed's own spellings, and products named in several languages and scripts
    spelled = set(df["origin"])
    assert {"Viet Nam", "Korea, Republic of"} & spelled or "China (People's Republic of)" in spelled
    assert df["product"].str.contains(r"[\u4e00-\u9fff]").any()
    assert df["product"].str.contains("ä|é|ł|ó", regex=True).any()
    assert df["product category"].isin([c for c, _ in PRODUCTS.values()] + [""]).mean() > 0.9
    # same seed, same file
    again = world / "look" / "again.csv"
    write_rasff_feed(again, world / "demo", seed=3)
    assert again.read_bytes() == path.read_bytes()


def test_feed_concerns_the_worlds_imports_and_bursts_at_outbreaks(world: Path) -> None:
    rows = pd.DataFrame(rasff_rows(world / "demo", seed=5))
    decl = pd.read_parquet(world / "demo" / "declarations.parquet")
    imports = decl[decl["direction"] == "import"]
    traded = set(zip(imports["hs_code"].str[:4], imports["origin_country"], strict=True))
    names = CountryNames()
    origin = rows["origin"].map(names.resolve)
    assert origin.notna().mean() > 0.95
    outbreaks = json.loads((world / "demo" / "ground_truth" / "outbreaks.json").read_text())
    food = [o for o in outbreaks if o["hs4"] in PRODUCTS]
    assert food, "the demo world plants outbreaks on food"
    dates = pd.to_datetime(rows["notification date"], format="%d-%m-%Y").dt.tz_localize("UTC")
    for ob in food:
        start = pd.Timestamp(ob["start"]).tz_convert("UTC")
        about = origin == ob["origin_country"]
        near = about & (dates >= start) & (dates < start + pd.Timedelta(days=45))
        assert near.sum() >= 3, ob["id"]
    # background notifications concern what the world imports: their origins trade the product
    assert {o for _, o in traded} >= set(origin.dropna()) - {"XK"}


def test_ingest_through_the_mapping_end_to_end(loaded: tuple[Path, dict, str]) -> None:
    store, report, output = loaded
    t = report["tables"]["risk_signals"]
    assert t["read"] == t["accepted"] + t["quarantined"]
    cov = report["signal_coverage"]["rasff_notifications.csv"]
    assert cov["rows"] == t["read"]
    assert cov["hs4_share"] >= 0.90, cov
    assert cov["hs4"] + cov["chapter_only"] + cov["unmapped"] == cov["rows"]
    # reported, not lost: what could not be mapped is named in the report and on the terminal
    assert cov["unmatched_countries"]["origin_country"]["unknown origin"] > 0
    assert cov["top_unmapped_products"] and cov["top_chapter_only_products"]
    assert "signal coverage of rasff_notifications.csv" in output
    assert "unmatched country names" in output
    sig = Store(store).read("risk_signals")
    feed_rows = sig[sig["signal_id"].str.match(r"^\d{4}\.\d{4}$")]
    assert len(feed_rows) == t["accepted"]
    assert (feed_rows["channel"] == "foreign_alert").all()
    assert feed_rows["reported_at"].dt.tz is not None
    # the rule that mapped each row is on the row; a set of HS4 has no single hs_code
    mapped = feed_rows[feed_rows["hs_codes"].notna()]
    assert mapped["mapping_rule"].notna().all()
    several = mapped[mapped["hs_codes"].str.contains(";")]
    assert len(several) and several["hs_code"].isna().all()
    single = mapped[~mapped["hs_codes"].str.contains(";")]
    assert (single["hs_code"] == single["hs_codes"]).all()
    assert mapped["mapping_rule"].str.startswith("rule:").mean() > 0.8
    assert feed_rows["hazard_type"].notna().all() and feed_rows["severity"].notna().all()
    # kept with what could be mapped: a product without an origin, an origin without a product
    assert (feed_rows["origin_country"].isna() & feed_rows["hs_codes"].notna()).any()
    assert (feed_rows["origin_country"].notna() & feed_rows["hs_codes"].isna()).any()
    # nothing identifies a subject: quarantined with the reason, the raw row kept
    q = Store(store).quarantine()
    q = q[q["source_file"] == "rasff_notifications.csv"]
    assert len(q) == t["quarantined"]
    assert q["reason"].str.contains("no subject").all()


def test_rows_naming_no_subject_are_quarantined_with_reason(tmp_path: Path) -> None:
    from features.ingest import ingest

    demo = tmp_path / "demo"
    write_demo_data(demo, 500, seed=1)
    ingest(demo, tmp_path / "s")  # the world first; the feed alone later
    feed = tmp_path / "feed"
    feed.mkdir()
    header = ",".join(f'"{c}"' for c in COLUMNS)
    lines = [
        # mapped: product and origin
        '2026.0001,02-11-2026,food,alert notification,Germany,Türkiye,"Salmonella in tahini '
        'from Türkiye","Mandeln","nuts, nut products and seeds",Salmonella,'
        "pathogenic micro-organisms,serious,no distribution",
        # origin only: the product is nothing the rules or the category table know
        "2026.0002,03-11-2026,food,alert notification,Italy,Viet Nam,something from Viet Nam,"
        "mystery item,,mystery,,undecided,no distribution",
        # neither: quarantined as naming no subject
        "2026.0003,04-11-2026,food,alert notification,Italy,unknown origin,mystery item,,,,,"
        "undecided,no distribution",
        # an origin no country has: kept with its product, the name recorded as a data-quality
        # issue (the office refused "unknown origin" in the mapping: that one is simply missing)
        "2026.0004,05-11-2026,food,alert notification,Spain,Atlantis,aflatoxins in almonds,"
        "Mandeln,,aflatoxins,mycotoxins,serious,no distribution",
    ]
    (feed / "rasff_notifications.csv").write_text("\n".join([header, *lines]) + "\n", "utf-8")
    report = ingest(feed, tmp_path / "s", mapping_file=MAPPING)
    t = report.tables["risk_signals"]
    assert (t.read, t.accepted, t.quarantined) == (4, 3, 1)
    cov = report.signal_coverage["rasff_notifications.csv"]
    assert (cov["hs4"], cov["unmapped"]) == (2, 2)
    assert cov["unmatched_countries"] == {"origin_country": {"unknown origin": 1, "Atlantis": 1}}
    assert {d["text"] for d in cov["top_unmapped_products"]} == {"mystery item"}
    sig = Store(tmp_path / "s").read("risk_signals").set_index("signal_id")
    assert sig.loc["2026.0001", "hs_code"] == "0802"
    assert sig.loc["2026.0001", "origin_country"] == "TR"
    assert sig.loc["2026.0001", "mapping_rule"] == "rule:almonds"
    assert sig.loc["2026.0001", "reported_at"] == pd.Timestamp("2026-11-01T16:00Z")
    assert sig.loc["2026.0002", "origin_country"] == "VN"
    assert pd.isna(sig.loc["2026.0002", "hs_codes"])
    assert sig.loc["2026.0002", "hazard_type"] == "other"  # text unknown: the default
    assert pd.isna(sig.loc["2026.0004", "origin_country"])
    assert sig.loc["2026.0004", "hs_codes"] == "0802"
    dq = Store(tmp_path / "s").data_quality()
    dq = dq[dq["source_file"] == "rasff_notifications.csv"]
    assert dq[["source_row", "column", "raw"]].values.tolist() == [
        [5, "origin_country", "Atlantis"]
    ]
    q = Store(tmp_path / "s").quarantine()
    row = q[q["source_file"] == "rasff_notifications.csv"].iloc[0]
    assert row["source_row"] == 4 and "no subject" in row["reason"]
    assert "unknown origin" in row["raw"]


def test_loading_the_same_export_again_changes_nothing(loaded: tuple[Path, dict, str]) -> None:
    store, _, _ = loaded
    feed = store.parent / "feed"
    out = CliRunner().invoke(
        app, ["ingest", str(feed), "--store", str(store), "--mapping", str(MAPPING)]
    )
    assert out.exit_code == 0 and "already loaded" in out.output


def test_a_burst_about_one_product_and_origin_is_proposed_within_a_week(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected RASFF notifications about a quiet product x origin: ``guomen warnings propose``
    one weekly cycle after the burst began proposes a report-driven warning on it, and not
    without the burst."""
    from guomen.settings import get_settings
    from policy.warnings import Subject, assess, load_warning_config

    decl = pd.read_parquet(world / "demo" / "declarations.parquet")
    imports = decl[(decl["direction"] == "import") & decl["hs_code"].str[:4].isin(list(PRODUCTS))]
    volume = imports.groupby([imports["hs_code"].str[:4], "origin_country"]).size()
    hs4, origin = volume[volume >= 20].sort_values().index[0]  # traded, but rarely notified
    end = pd.Timestamp(decl["declared_at"].max()).tz_convert("UTC")
    start = (end - pd.Timedelta(days=30)).floor("D")
    as_of = (start + pd.Timedelta(days=7)).isoformat()
    burst = Burst(hs4, origin, start.to_pydatetime(), count=5, days=5)

    def proposals(name: str, bursts: tuple[Burst, ...]) -> tuple[str, Path]:
        feed = tmp_path / name / "feed"
        write_rasff_feed(feed / "rasff_notifications.csv", world / "demo", seed=9, bursts=bursts)
        store = tmp_path / name / "store"
        runner = CliRunner()
        assert (
            runner.invoke(app, ["ingest", str(world / "demo"), "--store", str(store)]).exit_code
            == 0
        )
        r = runner.invoke(
            app, ["ingest", str(feed), "--store", str(store), "--mapping", str(MAPPING)]
        )
        assert r.exit_code == 0, r.output
        monkeypatch.setenv("GUOMEN_DATABASE_URL", f"sqlite:///{tmp_path / name / 'w.db'}")
        get_settings.cache_clear()
        try:
            r = runner.invoke(app, ["warnings", "propose", "--as-of", as_of, "--store", str(store)])
        finally:
            get_settings.cache_clear()
        assert r.exit_code == 0, r.output
        return r.output, store

    quiet, _ = proposals("quiet", ())
    loud, store = proposals("loud", (burst,))
    key = f"{hs4}/{origin}"
    assert key not in quiet
    assert key in loud, loud
    # the assessment says how the notifications were mapped to the subject
    [a] = assess(
        Store(store).tables(),
        as_of,
        load_warning_config(),
        subjects=[Subject("hs4_origin", (hs4, origin))],
    )
    assert a.report_driven and a.level == 4 and a.signals == 5
    assert a.signal_sources >= 2  # notifying member states are independent reporters
    assert any(r.startswith("rule:") for r in a.signal_rules), a.signal_rules
