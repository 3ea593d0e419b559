"""Past declarations explained as of their own time, for the committee pages.

Each declaration of the store is explained from its point-in-time features (as the online
snapshot would have had them when it was declared) by the serving model, with the arithmetic of
the API and rescoring (:func:`serving.explanations.explain`); never with today's snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.charts import waterfall_svg
from serving.committee.state import app_settings, current_scorer
from serving.explanations import PointInTimeFeatures, explain

TOP_REASONS = 12  # features listed; the rest are summed into one waterfall step
SHAP_CACHE_KEYS = 256


def point_in_time(app: Any) -> PointInTimeFeatures:
    """The app's cache of point-in-time feature rows (next to the store)."""
    state = app.state
    cache = getattr(state, "point_in_time", None)
    if cache is None:
        root = Path(app_settings(app).store_dir)
        cache = state.point_in_time = PointInTimeFeatures(root.parent / "explain-cache")
    return cache


def feature_rows(app: Any, scorer: Any, tables: dict[str, pd.DataFrame]) -> Any:
    """Point-in-time feature rows of the store in the serving model's column order."""
    from features.store import Store

    root = Path(app_settings(app).store_dir)
    attributes = Store(root).attributes if (root / "manifest.json").is_file() else None
    bundle = scorer.bundle
    return point_in_time(app).rows(
        root,
        tables,
        attributes,
        scorer.feature_names,
        entities=bundle.entities,
        categories=bundle.categories,
    )


def prepare_explanations(app: Any, tables: dict[str, pd.DataFrame]) -> int:
    """Build the point-in-time rows and the model's probabilities before the first page asks
    (``guomen up`` calls it); returns the number of rows."""
    scorer = current_scorer(app)
    if scorer is None:
        return 0
    rows = feature_rows(app, scorer, tables)
    rows.probabilities(scorer)
    return len(rows.ids)


def shap_reasons(
    app: Any, tables: dict[str, pd.DataFrame], rows: pd.DataFrame, top: int = TOP_REASONS
) -> dict[str, Any] | None:
    """Mean SHAP contribution per feature over the subject's declarations (calibrated log-odds),
    each explained as of its own time from its point-in-time features by the serving model;
    cached per store version, model version and set of declarations."""
    scorer = current_scorer(app)
    if scorer is None or rows.empty:
        return None
    pit = feature_rows(app, scorer, tables)
    ids = rows["declaration_id"].astype("str").tolist()
    key = (pit.version, scorer.ref.version, scorer.ref.manifest_sha256, tuple(ids))
    cache: dict[Any, Any] | None = getattr(app.state, "shap_reasons_cache", None)
    if cache is None:
        cache = app.state.shap_reasons_cache = {}
    if key in cache:
        return cache[key]
    found, X = pit.lookup(ids)
    if not found:
        return None
    scores = explain(scorer, X)
    contrib = scores.contributions
    mean = contrib.mean(axis=0)
    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")[:top]
    out = {
        "n": len(found),
        "mean_probability": float(scores.probability.mean()),
        "model": f"{scorer.ref.name} v{scorer.ref.version}",
        "reasons": [
            {
                "feature": scorer.feature_names[i],
                "description": scorer.descriptions[i][0] or scorer.descriptions[i][1],
                "mean": float(mean[i]),
                "mean_abs": float(mean_abs[i]),
            }
            for i in order
        ],
    }
    if len(cache) > SHAP_CACHE_KEYS:
        cache.clear()
    cache[key] = out
    return out


def re_explanation(
    app: Any, scorer: Any, tables: dict[str, pd.DataFrame], declaration_id: str
) -> dict[str, Any] | None:
    """A store declaration explained as of its own time: its point-in-time features, the serving
    model, the arithmetic of the API and rescoring. None when it is not in the store."""
    found, X = feature_rows(app, scorer, tables).lookup([declaration_id])
    if not found:
        return None
    scores = explain(scorer, X)
    contributions = scores.contributions[0]
    order = np.argsort(-np.abs(contributions), kind="stable")[:TOP_REASONS]
    items = [(scorer.feature_names[i], float(contributions[i])) for i in order]
    rest = float(contributions.sum() - sum(v for _, v in items))
    if abs(rest) > 1e-12:
        items.append((f"{len(contributions) - len(items)} other features", rest))
    probability = float(scores.probability[0])
    return {
        "probability": probability,
        "tier": scorer.policy.tier(probability),
        "base": float(scores.base[0]),
        "logit": float(scores.logit[0]),
        "contributions": contributions,
        "model": f"{scorer.ref.name} v{scorer.ref.version}",
        "reasons": [
            {
                "feature": scorer.feature_names[i],
                "description_zh": scorer.descriptions[i][0],
                "value": float(X[0, i]) if np.isfinite(X[0, i]) else None,
                "contribution": float(contributions[i]),
            }
            for i in order
        ],
        "svg": waterfall_svg(float(scores.base[0]), items, float(scores.logit[0])),
    }
