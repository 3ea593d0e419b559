"""The public spot-check report names no party outside the published blacklist."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from policy.disclosure import (
    DisclosureError,
    blacklisted,
    disclose,
    parse_period,
    write_disclosure,
)

TZ = "Asia/Shanghai"


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    from demo.generate import write_demo_data
    from features.ingest import ingest
    from features.store import Store

    root = tmp_path_factory.mktemp("disclosure-demo")
    write_demo_data(root / "demo", 20_000, seed=9)
    ingest(root / "demo", root / "store")
    return Store(root / "store").tables()


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[\w.\-]+", text))


def test_no_identifying_field_leaks(tables: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    now = pd.Timestamp.now(tz="UTC")
    # a year of results: the last closed calendar year that the demo covers, else the last
    # closed quarter (the demo ends at the real clock)
    period = parse_period(f"{now.tz_convert(TZ).year - 1}", TZ)
    decl = tables["declarations"]
    in_period = decl[(decl["declared_at"] >= period.start) & (decl["declared_at"] < period.end)]
    assert len(in_period) > 1000
    black = blacklisted(tables, period.end)
    assert black, "the demo has severely discredited enterprises (the published blacklist)"
    some = in_period["enterprise_id"].astype("str").unique()
    plain = [e for e in some if e not in black][:2]
    party = in_period["overseas_party_id"].dropna().astype("str").iloc[0]
    t0 = (period.start + pd.Timedelta(days=40)).isoformat()
    warnings = [
        {"id": "W-ENT", "subject_kind": "enterprise", "subject_key": plain[0], "level": 3,
         "status": "active", "activated_at": t0, "hazard": "health"},
        {"id": "W-OSP", "subject_kind": "overseas_party", "subject_key": party, "level": 4,
         "status": "lifted", "activated_at": t0, "hazard": "safety"},
        {"id": "W-HS4", "subject_kind": "hs4_origin", "subject_key": "0402/NZ", "level": 2,
         "status": "active", "activated_at": t0, "hazard": "health"},
    ]  # fmt: skip
    warnings.append({"id": "W-BLK", "subject_kind": "enterprise", "level": 2,
                     "subject_key": sorted(black)[0], "status": "active",
                     "activated_at": t0, "hazard": "fraud_labeling"})  # fmt: skip
    report = disclose(tables, period, now=now.to_pydatetime(), warnings=warnings)
    assert report["totals"]["samples"] > 0
    paths = write_disclosure(report, tmp_path)
    texts = {k: p.read_text(encoding="utf-8") for k, p in paths.items()}
    ents = tables["enterprises"]
    names = dict(zip(ents["enterprise_id"].astype("str"), ents["name"].astype("str"),
                     strict=True))  # fmt: skip
    secret_ids = (
        {e for e in decl["enterprise_id"].astype("str") if e not in black}
        | set(decl["declarant_id"].dropna().astype("str"))
        | set(decl["overseas_party_id"].dropna().astype("str"))
        | set(decl["declaration_id"].astype("str"))
    )
    secret_names = {n for e, n in names.items() if e not in black and len(n) >= 4}
    for kind, text in texts.items():
        leaked = _tokens(text) & secret_ids
        assert not leaked, f"{kind} names {sorted(leaked)[:5]}"
        for n in secret_names:
            assert n not in text, f"{kind} names enterprise {n!r}"
    by_id = {w["id"]: w for w in report["warnings"]}
    assert by_id["W-ENT"]["subject"] is None and by_id["W-OSP"]["subject"] is None
    assert by_id["W-HS4"]["subject"] == "0402/NZ"
    first = sorted(black)[0]
    assert by_id["W-BLK"]["subject"] == first
    named = {x["enterprise_id"]: x for x in report["named_enterprises"]}
    assert set(named) == set(black) and named[first]["name"] == names.get(first, "")
    assert first in texts["html"] and first in texts["json"]


def test_periods() -> None:
    p = parse_period("2026-Q3", TZ)
    assert p.start == pd.Timestamp("2026-07-01", tz=TZ) and p.end == pd.Timestamp(
        "2026-10-01", tz=TZ
    )
    assert parse_period("2026-H2", TZ).end == pd.Timestamp("2027-01-01", tz=TZ)
    assert parse_period("2026-02", TZ).end == pd.Timestamp("2026-03-01", tz=TZ)
    with pytest.raises(DisclosureError, match="YYYY-Qn"):
        parse_period("Q3-2026", TZ)
