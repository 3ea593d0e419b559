"""The legacy rule-based targeting score: how ports picked declarations before models.

A points table over contract columns only, so training can use it as a baseline on any data
(demo or a customs office's own export), and the demo generator uses it (with noise) for its
``targeted`` selection. It captures some real risk (legal-inspection goods, discredited
enterprises, newcomers) but also folklore (a fixed list of "high-risk" chapters and origins) and it
is blind to what a model can learn: an enterprise's own inspection history, undervaluation,
overseas parties, outbreaks and signals.

Points
------
======================================================  ======
legal_inspection is true                                 +2.0
HS chapter in ``HIGH_RISK_CHAPTERS``                     +1.5
origin_country in ``HIGH_RISK_ORIGINS``                  +1.0
trade_mode is cross_border_ecommerce                     +1.0
enterprise first seen < ``NEW_ENTERPRISE_DAYS`` ago       +1.0
third_party_certificate is true                          -1.0
credit in force: severely_discredited / discredited      +3.0 / +2.0
credit in force: aeo_certified / aeo_advanced            -1.0 / -2.0
======================================================  ======

"New enterprise" is decided from the declarations passed in (first ``declared_at`` of the
enterprise in that frame), so pass the enterprise's history along with the rows to score when
the frame is a slice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HIGH_RISK_CHAPTERS: tuple[str, ...] = ("02", "03", "04", "16", "19", "33", "61", "62", "85", "95")
HIGH_RISK_ORIGINS: tuple[str, ...] = ("VN", "IN", "TH", "ID", "BD", "KH", "BR", "EC", "PH")
NEW_ENTERPRISE_DAYS = 90

POINTS: dict[str, float] = {
    "legal_inspection": 2.0,
    "high_risk_chapter": 1.5,
    "high_risk_origin": 1.0,
    "cross_border_ecommerce": 1.0,
    "new_enterprise": 1.0,
    "third_party_certificate": -1.0,
}
CREDIT_POINTS: dict[str, float] = {
    "severely_discredited": 3.0,
    "discredited": 2.0,
    "regular": 0.0,
    "aeo_certified": -1.0,
    "aeo_advanced": -2.0,
}


def _bool_column(declarations: pd.DataFrame, name: str) -> np.ndarray:
    """A contract bool column as numpy bool; missing column or value means the default false."""
    if name not in declarations.columns:
        return np.zeros(len(declarations), dtype=bool)
    col = declarations[name]
    if col.dtype == bool:
        return col.to_numpy()
    return col.fillna(False).astype(bool).to_numpy()


def legacy_score(
    declarations: pd.DataFrame, credit_in_force: pd.Series | None = None
) -> np.ndarray:
    """Score declarations with the legacy points table (higher = inspect first).

    Parameters
    ----------
    declarations
        Contract ``declarations`` rows. Uses ``hs_code``, ``origin_country``, ``trade_mode``,
        ``enterprise_id``, ``declared_at`` and the optional ``legal_inspection`` and
        ``third_party_certificate`` columns.
    credit_in_force
        The credit rating in force for each row (aligned by position with ``declarations``);
        ``None`` or missing values count as ``regular``.

    Returns
    -------
    numpy.ndarray
        float64 points per declaration, in row order. Deterministic and vectorised.
    """
    n = len(declarations)
    score = np.zeros(n, dtype=np.float64)
    if n == 0:
        return score
    score += POINTS["legal_inspection"] * _bool_column(declarations, "legal_inspection")
    score += POINTS["third_party_certificate"] * _bool_column(
        declarations, "third_party_certificate"
    )
    chapter = declarations["hs_code"].astype(str).str.slice(0, 2)
    score += POINTS["high_risk_chapter"] * chapter.isin(HIGH_RISK_CHAPTERS).to_numpy()
    score += (
        POINTS["high_risk_origin"]
        * declarations["origin_country"].astype(str).isin(HIGH_RISK_ORIGINS).to_numpy()
    )
    score += (
        POINTS["cross_border_ecommerce"]
        * (declarations["trade_mode"].astype(str) == "cross_border_ecommerce").to_numpy()
    )
    declared_at = pd.to_datetime(declarations["declared_at"], utc=True)
    first_seen = declared_at.groupby(declarations["enterprise_id"].to_numpy()).transform("min")
    age = (declared_at - first_seen).to_numpy()
    score += POINTS["new_enterprise"] * (age < np.timedelta64(NEW_ENTERPRISE_DAYS, "D"))
    if credit_in_force is not None:
        points = (
            pd.Series(credit_in_force.to_numpy(), dtype=object)
            .map(CREDIT_POINTS)
            .fillna(0.0)
            .to_numpy(dtype=np.float64)
        )
        score += points
    return score
