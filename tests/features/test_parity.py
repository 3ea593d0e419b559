"""Three paths, one answer: online (snapshot just before the declaration) == offline; an
incrementally updated snapshot == one rebuilt from scratch; save/load round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.build import build_offline
from features.categorical import fit_code_maps
from features.online import OnlineFeatures
from features.registry import feature_names, feature_specs
from features.snapshot import Snapshot
from tests.features.pit_synth import CROSSES, make_tables

ATTRS = {"office_group": "categorical", "tax_rate": "numeric"}
EXACT = [
    s.name
    for s in feature_specs(ATTRS)
    if s.aggregation
    in ("decl_cnt", "insp_cnt", "nc_cnt", "ncmaj_cnt", "cnt", "is_new", "code", "flag", "dq_cnt")
    or s.aggregation.startswith(("channel_", "severity_"))
    # Ratios of two exact counts: the same division in every path.
    or s.aggregation in ("cert_share", "legal_cert_share", "uv_low_share", "sig_per_decl")
]


def _row(df: pd.DataFrame, i: int) -> dict[str, Any]:
    return {
        k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v)
        for k, v in df.iloc[i].to_dict().items()
    }


def assert_same(online: np.ndarray, offline: np.ndarray, names: list[str]) -> None:
    exact = np.isin(names, EXACT)
    both_nan = np.isnan(online) & np.isnan(offline)
    same = (online == offline) | both_nan
    assert same[exact].all(), [
        n for n, ok in zip(np.array(names)[exact], same[exact], strict=False) if not ok
    ]
    close = np.isclose(online, offline, rtol=1e-9, atol=1e-12) | both_nan
    assert close.all(), [
        (n, a, b) for n, a, b, ok in zip(names, online, offline, close, strict=False) if not ok
    ]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return make_tables(1200, seed=5, days=450, attributes=True)


@pytest.fixture(scope="module")
def offline(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return build_offline(tables, ATTRS)


def test_online_equals_offline(tables, offline, tmp_path: Path) -> None:
    names = feature_names(ATTRS)
    decl = tables["declarations"]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(decl), 12, replace=False)
    for n, i in enumerate(picks):
        row = _row(decl, int(i))
        snap = Snapshot.build(tables, row["declared_at"], ATTRS)
        if n < 3:  # the API loads from disk: include the round trip
            snap.save(tmp_path / f"s{n}")
            snap = Snapshot.load(tmp_path / f"s{n}")
        row["declared_at"] = (
            pd.Timestamp(row["declared_at"]).isoformat()
            if n % 2
            else row["declared_at"].to_pydatetime()
        )
        vec = OnlineFeatures(
            snap, names, categories=fit_code_maps(tables["declarations"], ATTRS)
        ).vector(row)
        assert vec.dtype == np.float64 and vec.shape == (len(names),)
        assert_same(vec, offline.loc[int(i), names].to_numpy(dtype=np.float64), names)


def test_an_older_feature_list_still_assembles(tables, offline) -> None:
    """A bundle trained before the behaviour features carries its own, shorter list: the online
    row follows that list, value for value."""
    older = [
        n
        for n in feature_names(ATTRS)
        if not n.endswith(("_cert_share_all", "_uv_mean_all", "_uv_low_share_all"))
        and n != "ent_sig_per_decl_365d"
    ]
    assert len(older) == len(feature_names(ATTRS)) - 5
    i = len(offline) - 1
    row = _row(tables["declarations"], i)
    snap = Snapshot.build(tables, row["declared_at"], ATTRS)
    vec = OnlineFeatures(
        snap, older, categories=fit_code_maps(tables["declarations"], ATTRS)
    ).vector(row)
    assert vec.shape == (len(older),)
    assert_same(vec, offline.loc[i, older].to_numpy(dtype=np.float64), older)


def _events_between(tables, t0, t1) -> list[tuple[pd.Timestamp, int, str, dict[str, Any]]]:
    events = []
    d = tables["declarations"]
    for i in np.flatnonzero(((d["declared_at"] >= t0) & (d["declared_at"] < t1)).to_numpy()):
        events.append((d["declared_at"].iloc[i], 0, "declaration", _row(d, int(i))))
    ins = tables["inspections"]
    for i in np.flatnonzero(((ins["inspected_at"] >= t0) & (ins["inspected_at"] < t1)).to_numpy()):
        events.append((ins["inspected_at"].iloc[i], 1, "inspection", _row(ins, int(i))))
    s = tables["risk_signals"]
    for i in np.flatnonzero(((s["reported_at"] >= t0) & (s["reported_at"] < t1)).to_numpy()):
        events.append((s["reported_at"].iloc[i], 2, "signal", _row(s, int(i))))
    return sorted(events, key=lambda e: (e[0], e[1]))


def test_incremental_equals_rebuilt(tables, offline, tmp_path: Path) -> None:
    names = feature_names(ATTRS)
    d = tables["declarations"]
    order = d["declared_at"].sort_values()
    t0 = order.iloc[len(order) // 2]
    t1 = order.iloc[len(order) * 3 // 4]
    inc = Snapshot.build(tables, t0, ATTRS)
    for _, _, kind, row in _events_between(tables, t0, t1):
        if kind == "declaration":
            inc.add_declaration(row)
        elif kind == "inspection":
            inc.add_inspection(row)
        else:
            inc.add_signal(row)
    rebuilt = Snapshot.build(tables, t1, ATTRS)
    inc.save(tmp_path / "inc")
    reloaded = Snapshot.load(tmp_path / "inc")
    on_inc = OnlineFeatures(inc, names, categories=fit_code_maps(tables["declarations"], ATTRS))
    on_reb = OnlineFeatures(rebuilt, names, categories=fit_code_maps(tables["declarations"], ATTRS))
    on_rel = OnlineFeatures(
        reloaded, names, categories=fit_code_maps(tables["declarations"], ATTRS)
    )
    # Queries at t1 (exactly what both snapshots hold) and a little later.
    later = np.flatnonzero((d["declared_at"] >= t1).to_numpy())[:25]
    for i in later:
        row = _row(d, int(i))
        row["declared_at"] = t1 if i == later[0] else row["declared_at"]
        a, b, c = on_inc.vector(row), on_reb.vector(row), on_rel.vector(row)
        assert_same(a, b, names)
        assert_same(c, b, names)
    # Declarations exactly at t1 see exactly what offline sees.
    at_t1 = np.flatnonzero((d["declared_at"] == t1).to_numpy())
    for i in at_t1:
        assert_same(
            on_inc.vector(_row(d, int(i))),
            offline.loc[int(i), names].to_numpy(dtype=np.float64),
            names,
        )


def test_a_result_recorded_now_moves_the_next_score(tables) -> None:
    names = feature_names(ATTRS)
    d = tables["declarations"]
    t = d["declared_at"].max() + pd.Timedelta(days=1)
    snap = Snapshot.build(tables, t, ATTRS)
    online = OnlineFeatures(snap, names, categories=fit_code_maps(tables["declarations"], ATTRS))
    uninspected = d[~d["declaration_id"].isin(tables["inspections"]["declaration_id"])]
    target = _row(uninspected, len(uninspected) - 1)
    query = dict(target, declaration_id="NEW", declared_at=t + pd.Timedelta(hours=2))
    before = online.features(query)
    snap.add_inspection(
        {
            "declaration_id": target["declaration_id"],
            "inspected_at": t + pd.Timedelta(hours=1),
            "selection": "random",
            "result": "nonconforming",
            "severity": "critical",
        }
    )
    after = online.features(query)
    assert after["ent_nc_cnt_all"] == before["ent_nc_cnt_all"] + 1
    assert after["ent_ncmaj_cnt_365d"] == before["ent_ncmaj_cnt_365d"] + 1
    assert after["ent_nc_rate_eb_all"] > before["ent_nc_rate_eb_all"]
    assert after["ent_days_since_nc_all"] == pytest.approx(1 / 24)
    with pytest.raises(KeyError):
        snap.add_inspection(
            {
                "declaration_id": target["declaration_id"],
                "inspected_at": t,
                "selection": "random",
                "result": "conforming",
            }
        )


def test_a_declaration_recorded_now_moves_the_behaviour(tables) -> None:
    """The API records each scored declaration: the enterprise's next declaration sees it in its
    behaviour features at once; a refused (too old) declaration leaves no trace."""
    names = feature_names(ATTRS)
    d = tables["declarations"]
    t = d["declared_at"].max() + pd.Timedelta(days=1)
    snap = Snapshot.build(tables, t, ATTRS)
    online = OnlineFeatures(snap, names, categories=fit_code_maps(tables["declarations"], ATTRS))
    ent = d["enterprise_id"].value_counts().index[0]
    mine = d[d["enterprise_id"] == ent]
    base = _row(mine, len(mine) - 1)
    query = dict(base, declaration_id="Q", declared_at=t + pd.Timedelta(hours=2))
    before = online.features(query)
    n = before["ent_decl_cnt_all"]
    assert n > 0 and 0 < before["ent_cert_share_all"] < 1

    too_old = dict(base, declaration_id="OLD", declared_at=t - pd.Timedelta(days=400))
    too_old.update(declared_value_usd=10.0, net_weight_kg=1.0, third_party_certificate=True)
    with pytest.raises(ValueError):
        snap.add_declaration(too_old)
    assert_same(
        OnlineFeatures(snap, names, categories=fit_code_maps(tables["declarations"], ATTRS)).vector(
            query
        ),
        online.vector(query),
        names,
    )  # nothing moved

    new = dict(base, declaration_id="NEW", declared_at=t + pd.Timedelta(hours=1))
    new.update(third_party_certificate=True, legal_inspection=False)
    snap.add_declaration(new)
    after = online.features(query)
    assert after["ent_decl_cnt_all"] == n + 1
    assert after["ent_cert_share_all"] == pytest.approx(
        (before["ent_cert_share_all"] * n + 1) / (n + 1), rel=1e-12
    )
    assert after["ent_legal_cert_share_all"] == before["ent_legal_cert_share_all"]
    assert after["ent_sig_per_decl_365d"] == pytest.approx(
        after["sig_ent_cnt_365d"] / after["ent_decl_cnt_365d"], rel=1e-12
    )


def test_old_snapshot_format_is_refused(tables, tmp_path: Path) -> None:
    """A snapshot saved before the behaviour sums existed cannot serve them: refuse to load it."""
    import json

    snap = Snapshot.build(tables, tables["declarations"]["declared_at"].max(), ATTRS)
    snap.save(tmp_path / "s")
    meta_path = tmp_path / "s" / "snapshot.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, format=1)))
    with pytest.raises(ValueError, match="guomen snapshot"):
        Snapshot.load(tmp_path / "s")


def test_unknown_entities_get_novelty_not_errors(tables) -> None:
    names = feature_names(ATTRS)
    snap = Snapshot.build(tables, tables["declarations"]["declared_at"].max(), ATTRS)
    row = {
        "declaration_id": "X1",
        "declared_at": "2030-01-01T08:00:00+08:00",
        "direction": "import",
        "port_code": "NEWPORT",
        "trade_mode": "general_trade",
        "hs_code": "99999999",
        "origin_country": "ZZ",
        "enterprise_id": "NEVER-SEEN",
        "declared_value_usd": 100.0,
        "net_weight_kg": 2.0,
        "office_group": "zzz",
    }
    with pytest.raises(ValueError):  # far outside the grace period? no: later is fine
        OnlineFeatures(snap, names, categories=fit_code_maps(tables["declarations"], ATTRS)).vector(
            dict(row, declared_at="2000-01-01T00:00:00Z")
        )
    f = OnlineFeatures(
        snap, names, categories=fit_code_maps(tables["declarations"], ATTRS)
    ).features(row)
    assert (
        f["ent_is_new_all"] == 1
        and f["ent_x_hs4_is_new_all"] == 1
        and f["ent_x_org_is_new_all"] == 1
    )
    assert f["ent_decl_cnt_all"] == 0 and np.isnan(f["ent_days_since_first_all"])
    assert np.isnan(f["dcl_decl_cnt_all"])  # no declarant given: unknown, not zero
    assert f["ent_credit_tier_at"] == 2.0
    assert 0 <= f["ent_nc_rate_eb_all"] <= 1


def test_declared_crosses_online_equal_offline(tables, tmp_path: Path) -> None:
    """A chosen entity set: the snapshot keeps only those keys (and their smoothing parents), and
    the online row equals the offline one, through a save/load round trip."""
    maps = fit_code_maps(tables["declarations"], ATTRS)
    offline = build_offline(tables, ATTRS, entities=CROSSES, categories=maps)
    names = feature_names(ATTRS, CROSSES)
    decl = tables["declarations"]
    for n, i in enumerate(np.random.default_rng(3).choice(len(decl), 6, replace=False)):
        row = _row(decl, int(i))
        snap = Snapshot.build(tables, row["declared_at"], ATTRS, entities=CROSSES)
        if n == 0:
            kept = set(snap.entities) - {"global"}
            assert kept == {
                "ent",
                "hs6",
                "hs4",
                "hs2",
                "org",
                "hsc",
                "trn",
                "port",
                "trd",
                "dcl",
            } | {
                "attr_office_group",
                *CROSSES[1:],
            }
            snap.save(tmp_path / "s")
            snap = Snapshot.load(tmp_path / "s")
        vec = OnlineFeatures(snap, names, categories=maps).vector(row)
        assert_same(vec, offline.loc[int(i), names].to_numpy(dtype=np.float64), names)


def test_a_subset_of_features_computes_only_what_it_needs(tables) -> None:
    """A model carrying a few features of a wide snapshot gets them value for value."""
    maps = fit_code_maps(tables["declarations"], ATTRS)
    offline = build_offline(tables, ATTRS, categories=maps)
    few = ["hs6_x_org_nc_rate_eb_all", "decl_hs4_cat_now", "ent_sig_per_decl_365d"]
    few = [n for n in few if n in offline.columns] + ["hs4_x_org_nc_rate_eb_365d"]
    i = len(offline) - 1
    row = _row(tables["declarations"], i)
    snap = Snapshot.build(tables, row["declared_at"], ATTRS)
    online = OnlineFeatures(snap, few, categories=maps)
    # ent for the ratio, hs4_x_org and the parents of its smoothed rate, nothing else.
    assert set(online._order) == {"ent", "hs2", "org", "hs4", "hs4_x_org"}
    assert (
        online._order.index("hs2") < online._order.index("hs4") < online._order.index("hs4_x_org")
    )
    assert_same(online.vector(row), offline.loc[i, few].to_numpy(dtype=np.float64), few)
    with pytest.raises(ValueError, match="code maps"):
        OnlineFeatures(snap, few)
