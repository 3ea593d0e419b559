"""Enterprise profiles from scored declarations.

Two steps, so that the heavy one runs inside each partition (every enterprise lives in exactly
one partition):

1. ``aggregate_partition``: per enterprise, the number of declarations, the mean calibrated
   probability (the expected nonconformity rate), the share in each tier and the mean calibrated
   SHAP contribution of every feature.
2. ``build_profiles``: the main reasons (top contributions up and down, with descriptions), the
   credit tier in force at the as-of time, the change since the previous run and the active
   warnings, one row per enterprise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.contract import CREDIT_RATINGS, DEFAULT_CREDIT_RATING
from policy.tiers import TIER_ORDER, SupervisionPolicy
from serving.rescore.explain import ScoredMatrix

TOP_REASONS = 5
CONTRIB_PREFIX = "shap__"
MEAN_PREFIX = "mean_shap__"

# An enterprise's active warnings: ``(enterprise_ids, as_of) -> {enterprise_id: [warning, ...]}``.
# Each warning is a JSON-able dict (id, level, publication type, measures...). The warnings engine
# (``policy.warnings``) plugs in here; until then every list is empty.
WarningsProvider = Callable[[Sequence[str], pd.Timestamp], Mapping[str, list[dict[str, Any]]]]


def no_active_warnings(
    enterprise_ids: Sequence[str], as_of: pd.Timestamp
) -> dict[str, list[dict[str, Any]]]:
    """The default hook: no warnings engine yet, so no enterprise has an active warning."""
    return {}


def scored_frame(ids: pd.DataFrame, scored: ScoredMatrix, feature_names: list[str]) -> pd.DataFrame:
    """Declaration-level output: ids, probability, logit, tier and calibrated contributions."""
    out = ids[["declaration_id", "declared_at", "enterprise_id"]].reset_index(drop=True).copy()
    out["probability"] = scored.probability
    out["logit"] = scored.logit
    out["tier"] = pd.Series(scored.tier, dtype="str")
    contrib = pd.DataFrame(
        scored.contributions, columns=[CONTRIB_PREFIX + f for f in feature_names]
    )
    return pd.concat([out, contrib], axis=1)


def aggregate_partition(
    ids: pd.DataFrame, scored: ScoredMatrix, feature_names: list[str]
) -> pd.DataFrame:
    """Per-enterprise aggregates of one partition.

    ``ids`` must be sorted by ``enterprise_id`` then ``declared_at`` (as ``scored`` rows are);
    sums then run in a fixed order and the result is the same bytes on every run.
    """
    ent = ids["enterprise_id"].to_numpy(dtype=object)
    n = len(ent)
    if n == 0:
        return _empty_aggregates(feature_names)
    starts = np.flatnonzero(np.r_[True, ent[1:] != ent[:-1]])
    counts = np.diff(np.r_[starts, n])
    p = scored.probability
    declared = ids["declared_at"]
    out = pd.DataFrame(
        {
            "enterprise_id": pd.array(ent[starts], dtype="str"),
            "declarations": counts.astype(np.int64),
            "expected_rate": np.add.reduceat(p, starts) / counts,
            "max_probability": np.maximum.reduceat(p, starts),
            "first_declared_at": declared.iloc[starts].to_numpy(),
            "last_declared_at": declared.iloc[np.r_[starts[1:], n] - 1].to_numpy(),
        }
    )
    for tier in TIER_ORDER:
        hit = (scored.tier == tier).astype(np.float64)
        out[f"share_{tier}"] = np.add.reduceat(hit, starts) / counts
    means = np.add.reduceat(scored.contributions, starts, axis=0) / counts[:, None]
    out = pd.concat(
        [out, pd.DataFrame(means, columns=[MEAN_PREFIX + f for f in feature_names])], axis=1
    )
    out["first_declared_at"] = out["first_declared_at"].astype(declared.dtype)
    out["last_declared_at"] = out["last_declared_at"].astype(declared.dtype)
    return out


def _empty_aggregates(feature_names: list[str]) -> pd.DataFrame:
    cols: dict[str, Any] = {
        "enterprise_id": pd.array([], dtype="str"),
        "declarations": np.array([], dtype=np.int64),
        "expected_rate": np.array([], dtype=np.float64),
        "max_probability": np.array([], dtype=np.float64),
        "first_declared_at": pd.Series([], dtype="datetime64[ns, UTC]"),
        "last_declared_at": pd.Series([], dtype="datetime64[ns, UTC]"),
    }
    for tier in TIER_ORDER:
        cols[f"share_{tier}"] = np.array([], dtype=np.float64)
    for f in feature_names:
        cols[MEAN_PREFIX + f] = np.array([], dtype=np.float64)
    return pd.DataFrame(cols)


def credit_in_force(credit_ratings: pd.DataFrame | None, cutoff: pd.Timestamp) -> pd.Series:
    """Rating in force at ``cutoff`` per enterprise: the latest row with ``effective_from`` at or
    before it (ties: the later row in the table wins). Missing enterprises are ``regular``."""
    if credit_ratings is None or credit_ratings.empty:
        return pd.Series(dtype="str", name="credit_rating")
    cr = credit_ratings.loc[credit_ratings["effective_from"] <= cutoff]
    cr = cr.assign(_row=np.arange(len(cr))).sort_values(
        ["enterprise_id", "effective_from", "_row"], kind="stable"
    )
    last = cr.groupby("enterprise_id", sort=True).tail(1)
    return pd.Series(
        last["rating"].astype("str").to_numpy(),
        index=pd.Index(last["enterprise_id"].astype("str"), name="enterprise_id"),
        name="credit_rating",
    )


def _reasons(
    means: np.ndarray, feature_names: list[str], descriptions: Mapping[str, tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """JSON lists of the top contributions up (raising the risk) and down, per enterprise."""
    up_json: list[str] = []
    down_json: list[str] = []
    # A stable sort breaks ties by feature position, so the order never depends on the
    # algorithm; only the first TOP_REASONS of each order can be chosen.
    top_up = np.argsort(-means, axis=1, kind="stable")[:, :TOP_REASONS]
    top_down = np.argsort(means, axis=1, kind="stable")[:, :TOP_REASONS]
    for row, ups, downs in zip(means, top_up, top_down, strict=True):
        up = [int(i) for i in ups if row[i] > 0]
        down = [int(i) for i in downs if row[i] < 0]
        up_json.append(_reason_json(up, row, feature_names, descriptions))
        down_json.append(_reason_json(down, row, feature_names, descriptions))
    return up_json, down_json


def _reason_json(
    chosen: list[int],
    row: np.ndarray,
    feature_names: list[str],
    descriptions: Mapping[str, tuple[str, str]],
) -> str:
    items = []
    for i in chosen:
        name = feature_names[i]
        zh, en = descriptions.get(name, ("", ""))
        items.append(
            {
                "feature": name,
                "contribution": float(row[i]),
                "description_zh": zh,
                "description_en": en,
            }
        )
    return json.dumps(items, ensure_ascii=False, sort_keys=True)


def feature_descriptions(feature_specs: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """``name -> (description_zh, description_en)`` from the specs the bundle carries."""
    return {
        str(s["name"]): (str(s.get("description_zh", "")), str(s.get("description_en", "")))
        for s in feature_specs
        if "name" in s
    }


def _tier_rank(tier: pd.Series) -> pd.Series:
    # 0 = most risky, as in TIER_ORDER.
    return tier.map({t: i for i, t in enumerate(TIER_ORDER)})


def build_profiles(
    aggregates: pd.DataFrame,
    *,
    feature_names: list[str],
    feature_specs: list[dict[str, Any]],
    policy: SupervisionPolicy,
    as_of: str,
    cutoff: pd.Timestamp,
    run_id: str,
    model_name: str | None,
    model_version: str,
    credit: pd.Series,
    enterprises: pd.DataFrame | None = None,
    previous: tuple[str, pd.DataFrame] | None = None,
    warnings: WarningsProvider = no_active_warnings,
) -> pd.DataFrame:
    """One profile row per enterprise, sorted by ``enterprise_id``.

    Enterprises of the register (``enterprises``) without declarations in the period get a row
    with ``declarations == 0`` and no expected rate, so the profile covers the whole register.
    """
    agg = aggregates.sort_values("enterprise_id", kind="stable").reset_index(drop=True)
    if enterprises is not None and not enterprises.empty:
        reg = enterprises.drop_duplicates("enterprise_id", keep="last")
        reg = reg.assign(enterprise_id=reg["enterprise_id"].astype("str"))
        missing = sorted(set(reg["enterprise_id"]) - set(agg["enterprise_id"]))
        if missing:
            filler = _empty_aggregates(feature_names).reindex(range(len(missing)))
            filler["enterprise_id"] = pd.array(missing, dtype="str")
            filler["declarations"] = 0
            agg = pd.concat([agg, filler], ignore_index=True)
            agg = agg.sort_values("enterprise_id", kind="stable").reset_index(drop=True)
        info_cols = [c for c in ("name", "enterprise_type", "region") if c in reg.columns]
        info = reg.set_index("enterprise_id")[info_cols]
    else:
        info = pd.DataFrame(index=pd.Index([], dtype="str", name="enterprise_id"))
    means = agg[[MEAN_PREFIX + f for f in feature_names]].to_numpy(dtype=np.float64)
    up, down = _reasons(np.nan_to_num(means), feature_names, feature_descriptions(feature_specs))

    ids = agg["enterprise_id"]
    prof = pd.DataFrame(
        {
            "as_of": as_of,
            "run_id": run_id,
            "model_name": model_name or "",
            "model_version": str(model_version),
            "enterprise_id": ids,
        }
    )
    for col in ("name", "enterprise_type", "region"):
        vals = info[col].reindex(ids.to_numpy()) if col in info.columns else None
        prof[col] = pd.array([None] * len(ids) if vals is None else vals.to_numpy(), dtype="str")
    prof["declarations"] = agg["declarations"].astype(np.int64)
    prof["expected_rate"] = agg["expected_rate"].astype(np.float64)
    prof["max_probability"] = agg["max_probability"].astype(np.float64)
    rate = prof["expected_rate"].to_numpy()
    risk_tier = np.where(np.isfinite(rate), policy.tiers(np.nan_to_num(rate, nan=-1.0)), None)  # type: ignore[call-overload]
    prof["risk_tier"] = pd.array(risk_tier, dtype="str")
    for tier in TIER_ORDER:
        prof[f"share_{tier}"] = agg[f"share_{tier}"].astype(np.float64)
    prof["first_declared_at"] = agg["first_declared_at"]
    prof["last_declared_at"] = agg["last_declared_at"]
    rating = credit.reindex(ids.to_numpy()).fillna(DEFAULT_CREDIT_RATING).to_numpy()
    bad = set(rating) - set(CREDIT_RATINGS)
    if bad:
        raise ValueError(f"unknown credit ratings {sorted(bad)}")
    prof["credit_rating"] = pd.array(rating, dtype="str")
    prof["reasons_up"] = pd.array(up, dtype="str")
    prof["reasons_down"] = pd.array(down, dtype="str")
    _add_changes(prof, previous)
    active = warnings(list(ids), cutoff)
    prof["warnings"] = pd.array(
        [json.dumps(list(active.get(e, [])), ensure_ascii=False, sort_keys=True) for e in ids],
        dtype="str",
    )
    # Rank 1 = the riskiest enterprise; ties by id; enterprises without declarations last.
    order = prof.sort_values(
        ["expected_rate", "enterprise_id"], ascending=[False, True], na_position="last"
    ).index
    rank = np.empty(len(prof), dtype=np.int64)
    rank[order.to_numpy()] = np.arange(1, len(prof) + 1)
    prof["risk_rank"] = rank
    return prof


def _add_changes(prof: pd.DataFrame, previous: tuple[str, pd.DataFrame] | None) -> None:
    """Change since the previous run: rate delta, tier movement and tier-share deltas."""
    if previous is None:
        prev_as_of = None
        prev = pd.DataFrame(index=pd.Index([], dtype="str"))
    else:
        prev_as_of, prev_frame = previous
        prev = prev_frame.set_index(prev_frame["enterprise_id"].astype("str"))
    ids = prof["enterprise_id"].to_numpy()
    known = pd.Series(ids).isin(prev.index).to_numpy()
    prof["previous_as_of"] = pd.array([prev_as_of if k else None for k in known], dtype="str")

    def prev_col(col: str, dtype: Literal["float64", "str"]) -> pd.Series:
        if col in prev.columns:
            return prev[col].reindex(ids).reset_index(drop=True).astype(dtype)
        return pd.Series([None] * len(ids), dtype=dtype)

    prev_rate = prev_col("expected_rate", "float64")
    prof["previous_expected_rate"] = prev_rate.to_numpy()
    prof["expected_rate_delta"] = prof["expected_rate"].to_numpy() - prev_rate.to_numpy()
    prev_tier = prev_col("risk_tier", "str")
    prof["previous_risk_tier"] = pd.array(prev_tier.to_numpy(), dtype="str")
    now_rank = _tier_rank(prof["risk_tier"]).to_numpy(dtype=np.float64)
    before_rank = _tier_rank(prev_tier).to_numpy(dtype=np.float64)
    change = np.where(
        ~known,
        "new",
        np.where(
            np.isnan(now_rank) | np.isnan(before_rank),
            np.where(np.isnan(now_rank) & np.isnan(before_rank), "same", "changed"),
            np.where(
                now_rank < before_rank, "up", np.where(now_rank > before_rank, "down", "same")
            ),
        ),
    )
    prof["risk_tier_change"] = pd.array(change, dtype="str")
    for tier in TIER_ORDER:
        prof[f"share_{tier}_delta"] = (
            prof[f"share_{tier}"].to_numpy() - prev_col(f"share_{tier}", "float64").to_numpy()
        )


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: ISO strings for times, None for NaN and NA, Python numbers."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


def profile_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A profile as a plain dict (JSON lists parsed, timestamps as ISO strings, NaN as None),
    the shape the API and the committee page use."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("reasons_up", "reasons_down", "warnings"):
            out[key] = json.loads(value) if isinstance(value, str) and value else []
        else:
            out[key] = _plain(value)
    out["tier_shares"] = {t: out.get(f"share_{t}") for t in TIER_ORDER}
    return out
