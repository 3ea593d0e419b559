"""The allocation maths of the annual monitoring plan (policy/plan.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from policy.plan import (
    PlanConfig,
    PlanError,
    allocate,
    apportion,
    group_of,
    quota_rate,
    reevaluate,
    warning_flags,
    wilson_interval,
    year_elapsed,
)


def groups(n: int = 40, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    modes = ["general_trade", "cross_border_ecommerce", "processing_trade", "market_procurement"]
    return pd.DataFrame(
        {
            "product": [f"{10 + i % 20:02d}" for i in range(n)],
            "origin_country": [["CN", "NZ", "DE", "VN"][i // 20 % 4] for i in range(n)],
            "trade_mode": [modes[i % 4] if i < 20 else modes[(i + 1) % 4] for i in range(n)],
            "volume": rng.integers(5, 5000, n).astype(float),
            "model_rate": rng.uniform(0.005, 0.15, n),
            "past_samples": rng.integers(0, 200, n),
            "past_nonconforming": 0,
        }
    ).assign(past_nonconforming=lambda d: (d["past_samples"] * d["model_rate"]).round())


def test_apportion_sums_respects_minimum_and_cap() -> None:
    # the caps sum below the total: every item at its cap
    out = apportion(100, [1, 1, 98, 0], minimum=[2, 2, 0, 1], cap=[5, 5, 60, 5])
    assert out.tolist() == [5, 5, 60, 5]
    out = apportion(40, [1, 1, 98, 0], minimum=[2, 2, 0, 1], cap=[5, 5, 60, 5])
    assert out.tolist() == [2, 2, 35, 1]
    out = apportion(10, [3, 3, 3])
    assert out.sum() == 10 and sorted(out) == [3, 3, 4]
    out = apportion(50, [1, 2, 97], cap=[100, 100, 20])
    assert out.tolist()[2] == 20 and out.sum() == 50
    with pytest.raises(PlanError, match="minimums"):
        apportion(2, [1, 1, 1], minimum=1)


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(10, 100)
    assert lo == pytest.approx(0.05523, abs=1e-4) and hi == pytest.approx(0.17437, abs=1e-4)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.16113, abs=1e-4)


def test_plan_keeps_the_floor_and_sums_to_n() -> None:
    g = groups()
    plan = allocate(g, 2000, 2027)
    lines = plan.lines
    assert lines["quota"].sum() == 2000
    assert (lines["floor"] >= 1).all()
    # floor is in proportion to volume: its largest-remainder error is below one sample
    exact = 1000 * lines["volume"] / lines["volume"].sum()
    assert (lines["floor"] - exact.clip(lower=1)).abs().max() < 1.0 + 1e-9
    assert (lines["quota"] <= np.maximum(0.5 * lines["volume"], 1)).all()
    assert (
        plan.summary["expected_nonconforming"] > plan.summary["expected_nonconforming_proportional"]
    )


def test_risk_goes_where_rate_is_high_or_uncertain() -> None:
    g = pd.DataFrame(
        {
            "product": ["01", "02", "03", "04"],
            "origin_country": "CN",
            "trade_mode": "general_trade",
            "volume": 1000.0,
            "model_rate": [0.02, 0.10, 0.02, 0.02],
            "past_samples": [500, 500, 0, 500],
            "past_nonconforming": [10, 50, 0, 10],
        }
    )
    lines = allocate(g, 200, 2027, PlanConfig(concentration=1.0)).lines.set_index("product")
    assert (lines["floor"] == 25).all()
    assert lines.loc["02", "risk"] > lines.loc["01", "risk"]  # high risk
    assert lines.loc["03", "risk"] > lines.loc["01", "risk"]  # same rate, unknown: uncertain
    assert lines.loc["01", "risk"] == lines.loc["04", "risk"]
    assert "few past results" in lines.loc["03", "reason_en"]
    assert "以往结果少" in lines.loc["03", "reason_zh"]


def test_warnings_and_new_trade_forms_add_samples() -> None:
    g = pd.DataFrame(
        {
            "product": ["04", "04", "04"],
            "origin_country": ["NZ", "AU", "AU"],
            "trade_mode": ["general_trade", "general_trade", "cross_border_ecommerce"],
            "volume": 1000.0,
            "model_rate": 0.03,
            "past_samples": 300,
            "past_nonconforming": 9,
        }
    )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    warnings = [
        {"id": "W1", "subject_kind": "hs4_origin", "subject_key": "0402/NZ", "status": "active"},
        {"id": "W0", "subject_kind": "origin", "subject_key": "AU", "status": "lifted",
         "lifted_at": (now - timedelta(days=800)).isoformat()},  # too long ago
    ]  # fmt: skip
    g = pd.concat([g, warning_flags(g, warnings, now, PlanConfig())], axis=1)
    assert g["warnings_active"].tolist() == ["W1", "", ""]
    assert g["warnings_lifted"].tolist() == ["", "", ""]
    lines = allocate(g, 300, 2027).lines.set_index("origin_country", append=True)
    risk = lines["risk"].tolist()  # sorted by group id: AU/cbe, AU/general, NZ/general
    assert risk[2] > risk[0] > risk[1]
    assert "warning in force W1" in lines["reason_en"].iloc[2]
    assert "跨境电商" in lines["reason_zh"].iloc[0]


def test_too_many_groups_for_the_samples_is_a_clear_error() -> None:
    with pytest.raises(PlanError, match="raise --samples"):
        allocate(groups(40), 10, 2027)


def test_ports_split_each_quota() -> None:
    g = groups(8)
    ports = pd.DataFrame(
        [
            {"group_id": f"{p}/{o}/{t}", "port_code": port, "volume": v * share}
            for p, o, t, v in zip(g["product"], g["origin_country"], g["trade_mode"], g["volume"],
                                  strict=True)
            for port, share in (("CNSHA", 0.7), ("CNNGB", 0.3))
        ]
    )  # fmt: skip
    plan = allocate(g, 400, 2027, ports=ports)
    per_group = plan.ports.groupby("group_id")["quota"].sum()
    assert per_group.reindex(plan.lines["group_id"]).tolist() == plan.lines["quota"].tolist()


def test_reevaluate_after_an_edit() -> None:
    plan = allocate(groups(), 2000, 2027)
    gid = plan.lines["group_id"].iloc[0]
    edited = reevaluate(plan.lines, {gid: 77}, plan.config)
    row = edited.iloc[0]
    assert row["quota"] == 77
    assert row["expected_nonconforming"] == pytest.approx(77 * row["estimated_rate"])
    with pytest.raises(PlanError):
        reevaluate(plan.lines, {"99/XX/other": 1}, plan.config)


def test_quota_rate_meets_the_quota_over_the_year() -> None:
    assert quota_rate(100, 0, 10_000, 0.0) == pytest.approx(0.01)
    assert quota_rate(100, 50, 10_000, 0.5) == pytest.approx(0.01)
    assert quota_rate(100, 80, 10_000, 0.5) == pytest.approx(0.004)  # ahead: slower
    assert quota_rate(100, 100, 10_000, 0.5) == 0.0  # met
    assert quota_rate(100, 0, 100, 0.9, cap=0.5) == 0.5


def test_year_elapsed_at_the_real_clock() -> None:
    now = datetime.now(UTC)
    year = now.astimezone().year
    e = year_elapsed(now, year, "Asia/Shanghai")
    assert 0.0 <= e <= 1.0
    assert year_elapsed(now, year + 1, "Asia/Shanghai") == 0.0
    assert year_elapsed(now, year - 2, "Asia/Shanghai") == 1.0


def test_group_of_a_declaration() -> None:
    d = {"hs_code": "0402109000", "origin_country": "NZ", "trade_mode": "general_trade"}
    assert group_of(d, "chapter") == "04/NZ/general_trade"
    assert group_of(d, "hs4") == "0402/NZ/general_trade"
