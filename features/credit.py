"""The credit rating in force: one implementation of the contract's rule.

The rating in force for an enterprise at a time is the latest ``credit_ratings`` row with
``effective_from <= t``; an enterprise with no such row is ``regular``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.contract import DEFAULT_CREDIT_RATING


def _utc(values: Any) -> pd.Series:
    # One resolution on both sides: merge_asof refuses keys of different datetime dtypes.
    return pd.to_datetime(pd.Series(values), utc=True).astype("datetime64[ns, UTC]")


def rating_in_force(
    enterprise_ids: Any, times: Any, credit_ratings: pd.DataFrame | None
) -> np.ndarray:
    """Rating in force for each ``(enterprise_ids[i], times[i])``, aligned by position.

    Returns an object array; rows with a missing enterprise or time, or without a rating at
    that time, get ``regular``.
    """
    ids = pd.Series(enterprise_ids, dtype="str").reset_index(drop=True)
    out = np.full(len(ids), DEFAULT_CREDIT_RATING, dtype=object)
    if credit_ratings is None or len(credit_ratings) == 0 or len(ids) == 0:
        return out
    left = pd.DataFrame(
        {"pos": np.arange(len(ids)), "enterprise_id": ids, "t": _utc(times).to_numpy()}
    ).dropna(subset=["enterprise_id", "t"])
    right = pd.DataFrame(
        {
            "enterprise_id": pd.Series(credit_ratings["enterprise_id"], dtype="str").to_numpy(),
            "t": _utc(credit_ratings["effective_from"]).to_numpy(),
            "rating": credit_ratings["rating"].astype(object).to_numpy(),
        }
    ).dropna()
    merged = pd.merge_asof(
        left.sort_values("t", kind="stable"),
        right.sort_values("t", kind="stable"),
        on="t",
        by="enterprise_id",
        direction="backward",
    )
    found = merged["rating"].notna().to_numpy()
    out[merged["pos"].to_numpy()[found]] = merged["rating"].to_numpy()[found]
    return out
