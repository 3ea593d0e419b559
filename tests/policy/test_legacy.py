import numpy as np
import pandas as pd
import pytest

from policy.legacy import CREDIT_POINTS, POINTS, legacy_score


def _frame(**overrides):
    base = {
        "hs_code": ["8471300000", "0306170000", "9503008900", "6109100000"],
        "origin_country": ["DE", "IN", "CN", "VN"],
        "trade_mode": ["general_trade", "general_trade", "cross_border_ecommerce", "bonded"],
        "enterprise_id": ["A", "B", "A", "C"],
        "declared_at": pd.to_datetime(
            ["2024-01-01", "2024-01-02", "2024-06-01", "2024-06-02"], utc=True
        ),
        "legal_inspection": [False, True, True, False],
        "third_party_certificate": [False, False, True, False],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_points_table_by_hand():
    df = _frame()
    score = legacy_score(df)
    # row 0: chapter 84, DE, general trade, A first seen -> new enterprise only
    # row 1: legal + chapter 03 + IN + new enterprise B
    # row 2: legal + chapter 95 + cbec + certificate; A is five months old by then
    # row 3: chapter 61 + VN + new enterprise C
    expected = [
        POINTS["new_enterprise"],
        POINTS["legal_inspection"]
        + POINTS["high_risk_chapter"]
        + POINTS["high_risk_origin"]
        + POINTS["new_enterprise"],
        POINTS["legal_inspection"]
        + POINTS["high_risk_chapter"]
        + POINTS["cross_border_ecommerce"]
        + POINTS["third_party_certificate"],
        POINTS["high_risk_chapter"] + POINTS["high_risk_origin"] + POINTS["new_enterprise"],
    ]
    np.testing.assert_allclose(score, expected)
    assert score.dtype == np.float64


def test_credit_in_force_adds_points_and_missing_is_regular():
    df = _frame()
    credit = pd.Series(["severely_discredited", None, "aeo_advanced", "regular"])
    diff = legacy_score(df, credit) - legacy_score(df)
    np.testing.assert_allclose(
        diff, [CREDIT_POINTS["severely_discredited"], 0.0, CREDIT_POINTS["aeo_advanced"], 0.0]
    )


def test_optional_columns_may_be_missing_and_scores_are_deterministic():
    df = _frame().drop(columns=["legal_inspection", "third_party_certificate"])
    a = legacy_score(df)
    b = legacy_score(df.copy())
    np.testing.assert_array_equal(a, b)
    assert a[1] == pytest.approx(
        POINTS["high_risk_chapter"] + POINTS["high_risk_origin"] + POINTS["new_enterprise"]
    )


def test_leading_zero_chapter_needs_string_codes():
    # "0306..." is chapter 03 (high risk); a code read as a number would lose it.
    df = _frame(hs_code=["0306170000", "3061700000", "0306170000", "0306170000"])
    score = legacy_score(df)
    assert score[0] - POINTS["new_enterprise"] == pytest.approx(POINTS["high_risk_chapter"])
    assert score[1] - POINTS["legal_inspection"] - POINTS["high_risk_origin"] - POINTS[
        "new_enterprise"
    ] == pytest.approx(0.0)


def test_empty_frame():
    assert legacy_score(_frame().iloc[:0]).shape == (0,)
