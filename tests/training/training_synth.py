"""Small synthetic feature and label frames in the documented ``build_offline`` /
``build_labels`` shape, for fast code tests of training (no store, no feature build)."""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURES = [f"f{i}" for i in range(8)]


def synthetic_frames(
    n: int = 20_000, months: int = 24, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Features, labels and ground truth (``p_true``, ``critical_p_true``).

    The risk depends on f0, f1, f2 and a hidden enterprise effect; inspections are a 2% random
    sample plus a targeted share driven by f2 and f3 (a biased "legacy" rule).
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01", tz="UTC")
    seconds = np.sort(rng.uniform(0, months * 30.4 * 86400, n))
    declared_at = start + pd.to_timedelta(seconds, unit="s")
    ent = rng.integers(0, 300, n)
    ent_effect = rng.normal(0, 0.7, 300)[ent]
    X = rng.normal(size=(n, len(FEATURES)))
    X[rng.random((n, len(FEATURES))) < 0.05] = np.nan
    x = np.nan_to_num(X)
    logit = -3.2 + 1.1 * x[:, 0] + 0.7 * x[:, 1] - 0.5 * x[:, 2] + ent_effect
    # f7 carries the enterprise effect with noise (like an enterprise history feature).
    X[:, 7] = ent_effect + rng.normal(0, 0.3, n)
    p_true = 1 / (1 + np.exp(-logit))
    critical_p = p_true * np.clip(0.15 + 0.1 * x[:, 3], 0.01, 0.9)
    random = rng.random(n) < 0.02
    targeted = ~random & (rng.random(n) < 1 / (1 + np.exp(-(-3.0 + 1.0 * x[:, 2] + 0.8 * x[:, 0]))))
    inspected = random | targeted
    y = rng.random(n) < p_true
    critical = y & (rng.random(n) < critical_p / np.maximum(p_true, 1e-12))
    ids = np.array([f"D{i:07d}" for i in rng.permutation(n)], dtype=object)
    features = pd.DataFrame(
        {
            "declaration_id": pd.array(ids, dtype="str"),
            "declared_at": declared_at,
            "enterprise_id": pd.array([f"E{e:04d}" for e in ent], dtype="str"),
        }
    )
    for i, name in enumerate(FEATURES):
        features[name] = X[:, i]
    nonconf = np.where(inspected, y.astype(float), np.nan)
    labels = pd.DataFrame(
        {
            "declaration_id": features["declaration_id"],
            "inspected": inspected,
            "nonconforming": nonconf,
            "selection": pd.array(
                np.where(random, "random", np.where(targeted, "targeted", None)), dtype="str"
            ),
            "severity": pd.array(
                np.where(inspected & critical, "critical", np.where(inspected & y, "minor", None)),
                dtype="str",
            ),
            "hazard_type": pd.array(np.where(inspected & y, "safety", None), dtype="str"),
            "inspected_at": pd.Series(declared_at + pd.Timedelta(days=2)).where(inspected),
        }
    )
    truth = pd.DataFrame(
        {
            "declaration_id": features["declaration_id"],
            "p_true": p_true,
            "critical_p_true": critical_p,
        }
    )
    return features, labels, truth
