"""Profiles in the database: the ``enterprise_profiles`` and ``rescore_runs`` tables (declared
on the shared ``serving.db.metadata``), an idempotent writer and the readers the API and the
committee pages use."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from policy.tiers import TIER_ORDER
from serving.db import UTCDateTime, create_schema, metadata, utcnow
from serving.rescore.profiles import profile_dict

# One row per enterprise and as-of date. The as-of date is the run key: rescoring the same date
# again replaces its rows (in one transaction), whatever model or data it used.
enterprise_profiles = sa.Table(
    "enterprise_profiles",
    metadata,
    sa.Column("as_of", sa.String(10), primary_key=True),
    sa.Column("enterprise_id", sa.String(128), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("enterprise_type", sa.String(64)),
    sa.Column("region", sa.Text),
    sa.Column("risk_rank", sa.Integer, nullable=False),
    sa.Column("declarations", sa.Integer, nullable=False),
    sa.Column("expected_rate", sa.Double),
    sa.Column("max_probability", sa.Double),
    sa.Column("risk_tier", sa.String(16)),
    *(sa.Column(f"share_{t}", sa.Double) for t in TIER_ORDER),
    sa.Column("first_declared_at", UTCDateTime),
    sa.Column("last_declared_at", UTCDateTime),
    sa.Column("credit_rating", sa.String(32), nullable=False),
    sa.Column("reasons_up", sa.Text, nullable=False),
    sa.Column("reasons_down", sa.Text, nullable=False),
    sa.Column("previous_as_of", sa.String(10)),
    sa.Column("previous_expected_rate", sa.Double),
    sa.Column("expected_rate_delta", sa.Double),
    sa.Column("previous_risk_tier", sa.String(16)),
    sa.Column("risk_tier_change", sa.String(16), nullable=False),
    *(sa.Column(f"share_{t}_delta", sa.Double) for t in TIER_ORDER),
    sa.Column("warnings", sa.Text, nullable=False),
    sa.Index("ix_enterprise_profiles_rank", "as_of", "risk_rank"),
)

# One row per as-of date: which run is in the profiles table and when it was written.
rescore_runs = sa.Table(
    "rescore_runs",
    metadata,
    sa.Column("as_of", sa.String(10), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("period_start", UTCDateTime, nullable=False),
    sa.Column("period_end", UTCDateTime, nullable=False),
    sa.Column("declarations", sa.Integer, nullable=False),
    sa.Column("enterprises", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("mlflow_run_id", sa.String(64)),
    sa.Column("written_at", UTCDateTime, nullable=False),
)

PROFILE_COLUMNS = [c.name for c in enterprise_profiles.columns]


def _py(value: Any) -> Any:
    """A DB-ready Python value (NaN/NA to None, numpy scalars to Python, UTC datetimes)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value


def write_profiles(
    engine: Engine,
    profiles: pd.DataFrame,
    run: dict[str, Any],
    chunk: int = 5000,
) -> None:
    """Replace the rows of ``run['as_of']`` with ``profiles`` in one transaction."""
    create_schema(engine)
    as_of = str(run["as_of"])
    rows = [
        {c: _py(v) for c, v in zip(PROFILE_COLUMNS, values, strict=True)}
        for values in profiles[PROFILE_COLUMNS].itertuples(index=False, name=None)
    ]
    with engine.begin() as conn:
        conn.execute(enterprise_profiles.delete().where(enterprise_profiles.c.as_of == as_of))
        for start in range(0, len(rows), chunk):
            conn.execute(enterprise_profiles.insert(), rows[start : start + chunk])
        conn.execute(rescore_runs.delete().where(rescore_runs.c.as_of == as_of))
        conn.execute(
            rescore_runs.insert(),
            {
                "as_of": as_of,
                "run_id": run["run_id"],
                "model_name": run.get("model_name") or "",
                "model_version": str(run["model_version"]),
                "period_start": pd.Timestamp(run["period_start"]).to_pydatetime(),
                "period_end": pd.Timestamp(run["period_end"]).to_pydatetime(),
                "declarations": int(run["declarations"]),
                "enterprises": int(run["enterprises"]),
                "summary": json.dumps(run.get("summary", {}), sort_keys=True),
                "mlflow_run_id": run.get("mlflow_run_id"),
                "written_at": utcnow(),
            },
        )


def latest_as_of(engine: Engine) -> str | None:
    """The most recent as-of date with profiles in the database."""
    create_schema(engine)
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(rescore_runs.c.as_of))).scalar()


def _row_dict(row: sa.Row[Any]) -> dict[str, Any]:
    data = dict(row._mapping)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = pd.Timestamp(value)
    return profile_dict(data)


def get_profile(
    engine: Engine, enterprise_id: str, as_of: str | None = None
) -> dict[str, Any] | None:
    """One enterprise's profile (latest run unless ``as_of``), or None when it has none."""
    as_of = as_of or latest_as_of(engine)
    if as_of is None:
        return None
    t = enterprise_profiles
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(t).where(t.c.as_of == as_of, t.c.enterprise_id == enterprise_id)
        ).first()
    return None if row is None else _row_dict(row)


def list_profiles(
    engine: Engine, limit: int = 50, offset: int = 0, as_of: str | None = None
) -> dict[str, Any]:
    """Profiles of one run sorted by risk (rank 1 = highest expected nonconformity rate).

    Returns ``{"as_of", "total", "limit", "offset", "items"}``; ``items`` are profile dicts.
    """
    as_of = as_of or latest_as_of(engine)
    if as_of is None:
        return {"as_of": None, "total": 0, "limit": limit, "offset": offset, "items": []}
    t = enterprise_profiles
    with engine.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.as_of == as_of)
        ).scalar_one()
        rows = conn.execute(
            sa.select(t)
            .where(t.c.as_of == as_of)
            .order_by(t.c.risk_rank)
            .limit(limit)
            .offset(offset)
        ).all()
    return {
        "as_of": as_of,
        "total": int(total),
        "limit": limit,
        "offset": offset,
        "items": [_row_dict(r) for r in rows],
    }


def run_info(engine: Engine, as_of: str | None = None) -> dict[str, Any] | None:
    """The ``rescore_runs`` row of ``as_of`` (default: latest) as a dict."""
    as_of = as_of or latest_as_of(engine)
    if as_of is None:
        return None
    with engine.connect() as conn:
        row = conn.execute(sa.select(rescore_runs).where(rescore_runs.c.as_of == as_of)).first()
    if row is None:
        return None
    data = dict(row._mapping)
    data["summary"] = json.loads(data["summary"])
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in data.items()}
