"""What the committee's landing page shows: the queries, kept out of the routes.

- declarations scored through the API yesterday and today (the office's time zone), by tier and
  by decision, from the audit log;
- production health by month of the ingested store: on the random monitoring sample (the only
  unbiased one), the mean predicted probability against the observed nonconformity rate, and
  the population stability index (PSI) of each month's scores against the model's training
  period, with the usual thresholds (0.1 watch, 0.2 act).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.audit import score_audit

PSI_WATCH = 0.1
PSI_ACT = 0.2
PSI_BINS = 10


def scored_days(engine: Engine, timezone: str, now: datetime) -> list[dict[str, Any]]:
    """Yesterday's and today's audited scores, counted by tier and by decision."""
    tz = ZoneInfo(timezone)
    today = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(today - timedelta(days=1), "昨天 yesterday"), (today, "今天 today")]
    out = []
    with engine.connect() as conn:
        for start, label in days:
            end = start + timedelta(days=1)
            where = (score_audit.c.created_at >= start) & (score_audit.c.created_at < end)
            by: dict[str, dict[str, int]] = {}
            for col in ("tier", "decision"):
                c = score_audit.c[col]
                rows = conn.execute(
                    sa.select(c, sa.func.count()).where(where).group_by(c).order_by(c)
                ).all()
                by[col] = {str(k): int(n) for k, n in rows}
            out.append(
                {
                    "label": label,
                    "date": start.date().isoformat(),
                    "total": sum(by["tier"].values()),
                    "by_tier": by["tier"],
                    "by_decision": by["decision"],
                }
            )
    return out


@dataclass
class MonthHealth:
    month: str
    declarations: int
    random_inspected: int
    predicted: float
    observed: float
    psi: float

    @property
    def psi_state(self) -> str:
        if not np.isfinite(self.psi):
            return "none"
        return "act" if self.psi >= PSI_ACT else "watch" if self.psi >= PSI_WATCH else "ok"


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``current`` against ``reference`` on the reference's
    quantile bins (shares floored at 1e-4 so an empty bin does not give infinity)."""
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if len(reference) < bins or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    e_share = np.maximum(e / e.sum(), 1e-4)
    a_share = np.maximum(a / a.sum(), 1e-4)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def monthly_health(
    declared_at_ns: np.ndarray,
    probability: np.ndarray,
    declaration_ids: pd.Index,
    inspections: pd.DataFrame | None,
    split: dict[str, str],
    months: int = 12,
) -> list[MonthHealth]:
    """Predicted against observed on the random sample, and PSI against the training period,
    for the last ``months`` months of the store.

    Parameters
    ----------
    declared_at_ns, probability, declaration_ids
        Every store declaration: declaration time, the model's point-in-time probability, id.
    inspections
        The store's inspections (``selection``, ``result``).
    split
        The model's time split (``train_start``, ``test_start``): the reference period.
    """
    if not len(probability):
        return []
    ref_start = pd.Timestamp(split.get("train_start", "1970-01-01")).value
    ref_end = pd.Timestamp(split.get("test_start", "2262-01-01")).value
    in_ref = (declared_at_ns >= ref_start) & (declared_at_ns < ref_end)
    reference = probability[in_ref]
    bad = np.full(len(probability), np.nan)
    if inspections is not None and len(inspections):
        rnd = inspections[inspections["selection"] == "random"]
        rnd = rnd.drop_duplicates("declaration_id")
        pos = declaration_ids.get_indexer(pd.Index(rnd["declaration_id"].astype("str")))
        ok = pos >= 0
        bad[pos[ok]] = (rnd["result"].to_numpy()[ok] == "nonconforming").astype(float)
    month = pd.DatetimeIndex(declared_at_ns.astype("datetime64[ns]")).to_period("M")
    codes, uniques = pd.factorize(month, sort=True)
    out = []
    for k in range(max(0, len(uniques) - months), len(uniques)):
        rows = codes == k
        sample = rows & np.isfinite(bad)
        n = int(sample.sum())
        out.append(
            MonthHealth(
                month=str(uniques[k]),
                declarations=int(rows.sum()),
                random_inspected=n,
                predicted=float(probability[sample].mean()) if n else float("nan"),
                observed=float(bad[sample].mean()) if n else float("nan"),
                psi=psi(reference, probability[rows]),
            )
        )
    return out
