"""Policies behind one interface: parsing, options, what each selects on a hand-made week."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.backtest.policies import (
    POLICIES,
    HybridPolicy,
    Policy,
    Selection,
    WeekView,
    parse_policy,
    register_policy,
)


def _view(p: np.ndarray, ent_insp: np.ndarray, pair_insp: np.ndarray) -> WeekView:
    n = len(p)
    names = ["ent_insp_cnt_all", "hs4_x_org_insp_cnt_all"]
    return WeekView(
        week_start=pd.Timestamp("2026-01-05", tz="UTC"),
        week_end=pd.Timestamp("2026-01-12", tz="UTC"),
        declarations=pd.DataFrame({"declaration_id": [f"D{i}" for i in range(n)]}),
        features=np.c_[ent_insp, pair_insp].astype(float),
        feature_names=names,
        probability=p,
        legacy=np.arange(n, dtype=float),
        revealed=pd.DataFrame(),
    )


def test_parse_policy_names_options_and_errors() -> None:
    assert parse_policy("exploit").name == "exploit"
    h = parse_policy("hybrid:explore=0.25,by=novelty")
    assert isinstance(h, HybridPolicy) and h.name == "hybrid-novelty-0.25"
    assert parse_policy("thompson:strength=5").name == "thompson-5"
    with pytest.raises(ValueError, match="unknown policy"):
        parse_policy("oracle")
    with pytest.raises(ValueError, match="by must be"):
        parse_policy("hybrid:by=luck")
    with pytest.raises(ValueError, match="key=value"):
        parse_policy("hybrid:0.2")
    with pytest.raises(ValueError, match="explore"):
        parse_policy("hybrid:explore=1.5")
    with pytest.raises(ValueError, match="takes no options"):
        parse_policy("exploit:x=1")


def test_what_each_policy_selects() -> None:
    rng = np.random.default_rng(0)
    p = np.linspace(0.01, 0.5, 100)  # the last rows are the riskiest
    ent = np.full(100, 5.0)
    ent[:10] = 0  # ten declarations of enterprises without a result
    view = _view(p, ent, np.full(100, 3.0))
    top = parse_policy("exploit").select(view, 10, rng)
    assert sorted(top.rows) == list(range(90, 100)) and not top.random.any()
    legacy = parse_policy("legacy").select(view, 5, rng)
    assert sorted(legacy.rows) == list(range(95, 100))
    rnd = parse_policy("random").select(view, 10, rng)
    assert len(set(rnd.rows)) == 10 and rnd.random.all()
    hyb = parse_policy("hybrid:explore=0.2,by=random").select(view, 10, rng)
    assert set(hyb.rows[~hyb.random]) == set(range(92, 100)) and hyb.random.sum() == 2
    novel = parse_policy("hybrid:explore=0.2,by=novelty").select(view, 10, rng)
    assert set(novel.rows) == set(range(92, 100)) | {8, 9}  # the riskiest of the new ones
    unc = parse_policy("hybrid:explore=0.2,by=uncertainty").select(view, 10, rng)
    assert len(set(unc.rows)) == 10 and set(range(92, 100)) <= set(unc.rows)
    ts = parse_policy("thompson").select(view, 10, rng)
    assert len(set(ts.rows)) == 10


def test_a_user_policy_registers_by_its_kind() -> None:
    class Last(Policy):
        kind = "last_rows_test"

        def select(self, view, k, rng):
            return Selection(np.arange(len(view))[-k:])

    register_policy(Last)
    try:
        pol = parse_policy("last_rows_test")
        assert list(pol.select(_view(np.zeros(6), np.zeros(6), np.zeros(6)), 2, None).rows) == [
            4,
            5,
        ]
    finally:
        POLICIES.pop("last_rows_test")
