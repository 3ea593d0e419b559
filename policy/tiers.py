"""Differentiated supervision from an inspection budget: score thresholds and named tiers.

The budget is the share of all declarations a port can open. A random monitoring share is kept
outside the model (unbiased labels, and a check that the model is not blind somewhere); the rest
of the budget goes to the highest scores. Thresholds are fitted on the validation period and
travel inside the model bundle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# Ordered from most to least risky. ``high`` is inspected; the others are released unless the
# random monitoring draw or a mandatory rule selects them.
TIER_ORDER = ("high", "elevated", "normal", "low")
TIER_LABELS_ZH = {"high": "高风险", "elevated": "较高风险", "normal": "一般风险", "low": "低风险"}


@dataclass(frozen=True)
class SupervisionPolicy:
    """Budget, monitoring share and the score thresholds of each tier.

    ``thresholds[tier]`` is the lowest calibrated probability that falls in that tier; ``low``
    takes everything below ``normal``.
    """

    budget: float
    monitoring_share: float
    thresholds: dict[str, float]
    # Share of validation declarations that fell in each tier, for the model card.
    tier_shares: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.budget <= 1.0:
            raise ValueError(f"budget must be in (0, 1], got {self.budget}")
        if not 0.0 <= self.monitoring_share < self.budget:
            raise ValueError("monitoring_share must be in [0, budget)")
        missing = set(TIER_ORDER[:-1]) - set(self.thresholds)
        if missing:
            raise ValueError(f"thresholds missing tiers {sorted(missing)}")
        values = [self.thresholds[t] for t in TIER_ORDER[:-1]]
        if any(a < b for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"tier thresholds must not increase: {values}")

    @property
    def model_share(self) -> float:
        """Share of declarations selected by score (budget less the monitoring share)."""
        return self.budget - self.monitoring_share

    def tier(self, probability: float) -> str:
        for name in TIER_ORDER[:-1]:
            if probability >= self.thresholds[name]:
                return name
        return TIER_ORDER[-1]

    def tiers(self, probabilities: np.ndarray) -> np.ndarray:
        p = np.asarray(probabilities, dtype=np.float64)
        out = np.full(p.shape, TIER_ORDER[-1], dtype=object)
        # Assign from the least to the most risky so higher tiers overwrite.
        for name in reversed(TIER_ORDER[:-1]):
            out[p >= self.thresholds[name]] = name
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupervisionPolicy:
        return cls(
            budget=float(data["budget"]),
            monitoring_share=float(data["monitoring_share"]),
            thresholds={k: float(v) for k, v in data["thresholds"].items()},
            tier_shares={k: float(v) for k, v in data.get("tier_shares", {}).items()},
        )


def derive_policy(
    validation_scores: np.ndarray,
    budget: float = 0.05,
    monitoring_share: float = 0.01,
    elevated_share: float = 0.10,
    normal_share: float = 0.50,
) -> SupervisionPolicy:
    """Fit thresholds so that, on the validation period, the ``high`` tier takes
    ``budget - monitoring_share`` of declarations, ``elevated`` the next ``elevated_share`` and
    ``normal`` down to the top ``normal_share``; the rest is ``low``.

    Parameters
    ----------
    validation_scores
        Calibrated probabilities of all validation declarations (inspected or not: the budget is
        a share of all declarations).
    """
    scores = np.asarray(validation_scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        raise ValueError("no validation scores to derive thresholds from")
    model_share = budget - monitoring_share
    if model_share <= 0:
        raise ValueError("budget must exceed the monitoring share")
    cuts = {
        "high": model_share,
        "elevated": min(model_share + elevated_share, 1.0),
        "normal": max(normal_share, model_share + elevated_share),
    }
    thresholds = {
        tier: float(np.quantile(scores, 1.0 - share, method="higher"))
        for tier, share in cuts.items()
    }
    # Ties at the top could make a lower tier's threshold exceed a higher one's; keep them ordered.
    thresholds["elevated"] = min(thresholds["elevated"], thresholds["high"])
    thresholds["normal"] = min(thresholds["normal"], thresholds["elevated"])
    policy = SupervisionPolicy(budget, monitoring_share, thresholds)
    tiers = policy.tiers(scores)
    shares = {t: float(np.mean(tiers == t)) for t in TIER_ORDER}
    return SupervisionPolicy(budget, monitoring_share, thresholds, shares)
