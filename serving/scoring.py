"""The ``Scorer``: bundle + online features + exact TreeSHAP + policy -> one result per row.

Probability, tier and explanation come from the same numbers: the exact SHAP values of the raw
margin (``phi``, last entry the expected margin) sum to the margin (TreeSHAP's local accuracy),
so with the bundle's Platt map ``logit(p) = a * margin + b`` the calibrated contributions are
``a * phi[:-1]``, the base value is ``a * phi[-1] + b``, and ``base + sum == logit(p)`` exactly.

One row is a float64 numpy vector (never a one-row DataFrame). Batches use the same math on a
matrix, so single and batch answers agree.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from features.contract import CREDIT_RATINGS, DEFAULT_CREDIT_RATING
from features.rates import RateTable
from policy.tiers import SupervisionPolicy
from riskmodel import ModelBundle, ModelRef
from riskmodel.explain import Calibrated, calibrate, make_explainer
from serving.decisions import Decision, InspectionMeasure, decide
from serving.phase_timing import mark

log = logging.getLogger("guomen.serving.scoring")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(at: datetime) -> int:
    """Integer ns since the epoch of an aware datetime (exact, no float rounding)."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


class FeatureError(ValueError):
    """The declaration cannot be turned into features (e.g. too far before the snapshot)."""


class CurrencyError(ValueError):
    """No rate is in force for a currency at the declaration time."""


def to_usd(rates: RateTable, value: float, currency: str, at: datetime) -> float:
    """Convert one amount with the rate in force at ``at`` (a binary search, no pandas)."""
    if currency == "USD":
        return float(value)
    table = rates.by_currency.get(currency)
    if table is None:
        raise CurrencyError(f"no rate for currency {currency!r}")
    starts, usd_per_unit = table
    at_ns = _ns(at)
    pos = int(np.searchsorted(starts, at_ns, side="right")) - 1
    if pos < 0:
        raise CurrencyError(f"no rate for currency {currency!r} in force at {at.isoformat()}")
    return float(value) * float(usd_per_unit[pos])


class LiveSnapshot:
    """The online snapshot shared by every model version, with its lock.

    Reads (feature vectors) and writes (new declarations, inspection results) of the in-memory
    entity state are serialised by one lock; the expensive SHAP step runs outside it.
    """

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot
        self.lock = threading.Lock()
        self._as_of: tuple[int, datetime] | None = None

    @property
    def as_of(self) -> datetime:
        """The snapshot time (UTC); converted once per value (read on every request)."""
        ns = self.snapshot.as_of_ns
        cached = self._as_of
        if cached is None or cached[0] != ns:
            cached = self._as_of = (ns, pd.Timestamp(ns, tz="UTC").to_pydatetime())
        return cached[1]

    def credit_rating(self, enterprise_id: str, at: datetime) -> str:
        """The enterprise's credit rating in force at ``at`` (contract rule: the latest rating
        with ``effective_from <= at``; ``regular`` without one), from the snapshot's history."""
        history = self.snapshot.credit.get(enterprise_id)
        if history is None:
            return DEFAULT_CREDIT_RATING
        times, codes = history
        i = bisect_right(times, _ns(at))
        return CREDIT_RATINGS[int(codes[i - 1])] if i else DEFAULT_CREDIT_RATING

    def add_declarations(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Count scored declarations in the entity histories (after their audit is stored)."""
        with self.lock:
            for row in rows:
                try:
                    self.snapshot.add_declaration(row)
                except ValueError as exc:  # e.g. older than the snapshot's unit-value month
                    log.warning(
                        "declaration %s not added to the snapshot: %s", row["declaration_id"], exc
                    )

    def add_inspection(self, row: Mapping[str, Any]) -> bool:
        """Apply an inspection result; False when the snapshot does not know the declaration."""
        with self.lock:
            result = self.snapshot.add_inspection(dict(row))
        return result is not False


@dataclass
class ScoreResult:
    """One scored declaration."""

    declaration_id: str
    probability: float
    logit: float
    tier: str
    decision: Decision
    base_value: float
    contributions: np.ndarray  # calibrated log-odds, model feature order
    values: np.ndarray  # the feature vector

    def top(self, k: int) -> np.ndarray:
        """Indices of the ``k`` largest contributions by absolute value (ties: model order)."""
        order = np.argsort(-np.abs(self.contributions), kind="stable")
        return order[: max(k, 0)]


class Scorer:
    """Scores declarations with one model version against the live snapshot.

    Immutable once built: a reload builds a new ``Scorer`` and swaps one reference, so a request
    that already holds the old one finishes with it.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        ref: ModelRef,
        live: LiveSnapshot,
        *,
        secret: str,
        measure_secret: str | None = None,
        rates: RateTable | None = None,
        online_features: Any | None = None,
        monitoring: Any | None = None,
    ) -> None:
        self.bundle = bundle
        self.ref = ref
        self.live = live
        self.secret = secret
        self.measure_secret = measure_secret
        # ``share(declaration, default) -> float``: the approved plan's per-group monitoring
        # share (serving.plan_store.QuotaShares); None: the bundle policy's one global share
        self.monitoring = monitoring
        self.policy = SupervisionPolicy.from_dict(bundle.policy)
        self.feature_names = list(bundle.feature_names)
        if online_features is None:
            from features.online import OnlineFeatures

            online_features = OnlineFeatures(
                live.snapshot, self.feature_names, rates, categories=bundle.categories
            )
        self.online = online_features
        self.explainer, self.explainer_name = make_explainer(bundle.booster)
        self.descriptions = _descriptions(bundle)
        self.loaded_at = datetime.now(UTC)

    # -- the math, shared by one row and many (riskmodel.explain.calibrate) ---------------
    def _finish(
        self,
        declaration: Mapping[str, Any],
        x: np.ndarray,
        scores: Calibrated,
        i: int,
        credit: str | None,
        measures: Sequence[InspectionMeasure],
    ) -> ScoreResult:
        probability = float(scores.probability[i])
        tier = self.policy.tier(probability)
        decision = decide(
            declaration,
            tier,
            credit_rating=credit,
            measures=measures,
            secret=self.secret,
            monitoring_share=(
                self.policy.monitoring_share
                if self.monitoring is None
                else self.monitoring.share(declaration, self.policy.monitoring_share)
            ),
            measure_secret=self.measure_secret,
        )
        return ScoreResult(
            declaration_id=str(declaration["declaration_id"]),
            probability=probability,
            logit=float(scores.logit[i]),
            tier=tier,
            decision=decision,
            base_value=float(scores.base[i]),
            contributions=scores.contributions[i],
            values=x,
        )

    def _features(self, declarations: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list]:
        X = np.empty((len(declarations), len(self.feature_names)), dtype=np.float64)
        credits: list[str | None] = []
        with self.live.lock:
            for i, d in enumerate(declarations):
                try:
                    X[i] = self.online.vector(d)
                except ValueError as exc:
                    raise FeatureError(i, str(exc)) from exc
                credits.append(self.live.credit_rating(d["enterprise_id"], d["declared_at"]))
        return X, credits

    def score(
        self, declaration: Mapping[str, Any], measures: Sequence[InspectionMeasure] = ()
    ) -> ScoreResult:
        """Score and explain one declaration (contract fields plus ``declared_value_usd``).

        The snapshot is not changed; call ``live.add_declarations`` once the result is audited.
        """
        X, credits = self._features([declaration])
        mark("features")
        phi = self.explainer.contributions_row(X[0])
        scores = calibrate(phi[None, :], self.bundle.calibration)
        mark("explain")
        result = self._finish(declaration, X[0], scores, 0, credits[0], measures)
        mark("decide")
        return result

    def score_many(
        self,
        declarations: Sequence[Mapping[str, Any]],
        measures: Sequence[InspectionMeasure] = (),
    ) -> list[ScoreResult]:
        """Score a batch against the same snapshot state (one matrix through TreeSHAP)."""
        if not declarations:
            return []
        X, credits = self._features(declarations)
        scores = calibrate(self.explainer.contributions(X), self.bundle.calibration)
        return [
            self._finish(d, X[i], scores, i, credits[i], measures)
            for i, d in enumerate(declarations)
        ]

    def reasons(self, result: ScoreResult, k: int) -> list[dict[str, Any]]:
        """The top ``k`` reasons: feature, value, calibrated contribution, descriptions."""
        out = []
        for i in result.top(k):
            zh, en = self.descriptions[i]
            out.append(
                {
                    "feature": self.feature_names[i],
                    "value": finite_or_none(result.values[i]),
                    "contribution": float(result.contributions[i]),
                    "description_zh": zh,
                    "description_en": en,
                }
            )
        return out


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a missing feature value is reported as null."""
    v = float(value)
    return v if math.isfinite(v) else None


def _descriptions(bundle: ModelBundle) -> list[tuple[str, str]]:
    """(zh, en) per model column: from the bundle's specs, else from the feature registry."""
    by_name: dict[str, tuple[str, str]] = {}
    for spec in bundle.feature_specs:
        if isinstance(spec, dict) and "name" in spec:
            by_name[str(spec["name"])] = (
                str(spec.get("description_zh", "")),
                str(spec.get("description_en", "")),
            )
    missing = [n for n in bundle.feature_names if n not in by_name]
    if missing:
        from features.registry import feature_specs

        for fspec in feature_specs(bundle.attributes or None):
            by_name.setdefault(fspec.name, (fspec.description_zh, fspec.description_en))
    return [by_name.get(n, ("", "")) for n in bundle.feature_names]
