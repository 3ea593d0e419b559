import numpy as np
import pytest

from policy.monitoring import monitoring_draw, selected_for_monitoring
from policy.tiers import TIER_ORDER, SupervisionPolicy, derive_policy


def test_derive_policy_fills_the_budget_on_validation():
    rng = np.random.default_rng(0)
    scores = rng.beta(1, 20, size=100_000)
    policy = derive_policy(scores, budget=0.05, monitoring_share=0.01)
    assert policy.tier_shares["high"] == pytest.approx(0.04, abs=0.001)
    assert policy.tier_shares["elevated"] == pytest.approx(0.10, abs=0.002)
    assert sum(policy.tier_shares.values()) == pytest.approx(1.0)
    assert policy.thresholds["high"] >= policy.thresholds["elevated"] >= policy.thresholds["normal"]


def test_tier_and_tiers_agree():
    policy = derive_policy(np.linspace(0, 1, 1001), budget=0.2, monitoring_share=0.05)
    probs = np.array([0.0, 0.3, 0.6, 0.9, 0.99])
    assert list(policy.tiers(probs)) == [policy.tier(p) for p in probs]
    assert policy.tier(1.0) == "high" and policy.tier(0.0) == "low"


def test_round_trip_and_validation():
    policy = derive_policy(np.linspace(0, 1, 101))
    assert SupervisionPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ValueError):
        SupervisionPolicy(0.05, 0.06, {t: 0.5 for t in TIER_ORDER[:-1]})
    with pytest.raises(ValueError):
        SupervisionPolicy(0.05, 0.01, {"high": 0.1, "elevated": 0.2, "normal": 0.0})


def test_monitoring_draw_is_keyed_reproducible_and_uniform():
    ids = [f"D{i:07d}" for i in range(20_000)]
    draws = np.array([monitoring_draw(i, "k1") for i in ids])
    assert np.all((draws >= 0) & (draws < 1))
    assert abs(draws.mean() - 0.5) < 0.01
    assert monitoring_draw("D1", "k1") == monitoring_draw("D1", "k1")
    assert monitoring_draw("D1", "k1") != monitoring_draw("D1", "k2")
    share = np.mean([selected_for_monitoring(i, "k1", 0.01) for i in ids])
    assert share == pytest.approx(0.01, abs=0.003)
    with pytest.raises(ValueError):
        monitoring_draw("D1", "")
