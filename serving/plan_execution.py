"""Execution of the approved monitoring plan: samples drawn, results and rate per group.

Drawn: API answers with ``monitoring_selected`` in the plan year (audit log). Results: final
``random`` inspections of the plan year, from the serving database (``POST /v1/inspections``)
and the ingested store (a declaration counted once, the database row winning); each result's
group comes from its declaration (store, else the audited request).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from features.build import final_inspections
from policy.plan import ProductLevel, group_frame, group_of, wilson_interval
from serving.audit import inspection_results, score_audit
from serving.plan_store import count_draws, get_plan, list_plans


def plan_for_tracking(engine: Engine, year: int) -> dict[str, Any] | None:
    """The approved plan of ``year``, else the newest approved plan (None when none)."""
    approved = [p for p in list_plans(engine) if p["status"] == "approved"]
    for p in approved:
        if p["year"] == year:
            return p
    return approved[0] if approved else None


def execution(
    engine: Engine,
    tables: Mapping[str, pd.DataFrame] | None,
    *,
    now: datetime,
    timezone: str,
) -> dict[str, Any] | None:
    """Per group of the plan being tracked: quota, drawn, results, nonconforming, rate and its
    95 % Wilson interval; totals. None without an approved plan."""
    year = pd.Timestamp(now).tz_convert(timezone).year
    head = plan_for_tracking(engine, year)
    if head is None:
        return None
    plan, lines = get_plan(engine, head["id"])
    level = plan["product_level"]
    start = pd.Timestamp(year=plan["year"], month=1, day=1, tz=timezone).tz_convert("UTC")
    end = pd.Timestamp(year=plan["year"] + 1, month=1, day=1, tz=timezone).tz_convert("UTC")
    drawn, _ = count_draws(engine, level, start.to_pydatetime())
    results = _results(engine, tables, level, start, end)
    rows: list[dict[str, Any]] = []
    for gid, quota, rate in zip(
        lines["group_id"].astype("str").tolist(),
        lines["quota"].astype("int64").tolist(),
        lines["estimated_rate"].astype("float64").tolist(),
        strict=True,
    ):
        n, k = results.get(gid, (0, 0))
        lo, hi = wilson_interval(k, n) if n else (None, None)
        rows.append({
            "group_id": gid, "quota": quota, "drawn": int(drawn.get(gid, 0)),
            "results": n, "nonconforming": k, "rate": (k / n) if n else None,
            "ci_low": lo, "ci_high": hi, "estimated_rate": rate,
        })  # fmt: skip
    total_n = sum(x["results"] for x in rows)
    total_k = sum(x["nonconforming"] for x in rows)
    unplanned = {g: v for g, v in results.items() if g not in set(lines["group_id"])}
    return {
        "plan": plan,
        "in_force": plan["year"] == year,
        "rows": rows,
        "quota": int(lines["quota"].sum()),
        "drawn": int(sum(drawn.values())),
        "results": total_n,
        "nonconforming": total_k,
        "rate": (total_k / total_n) if total_n else None,
        "groups_at_quota": sum(1 for x in rows if x["quota"] and x["results"] >= x["quota"]),
        "unplanned_results": sum(v[0] for v in unplanned.values()),
    }


def _results(
    engine: Engine,
    tables: Mapping[str, pd.DataFrame] | None,
    level: ProductLevel,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> dict[str, tuple[int, int]]:
    """(results, nonconforming) of random inspections in ``[start, end)`` per group."""
    found: dict[str, tuple[str, str]] = {}  # declaration id -> (group, result)
    decl = tables.get("declarations") if tables else None
    insp = tables.get("inspections") if tables else None
    if decl is not None and insp is not None and len(insp):
        i = final_inspections(insp)
        i = i[(i["selection"] == "random") & (i["inspected_at"] >= start)
              & (i["inspected_at"] < end)]  # fmt: skip
        if len(i):
            d = decl[decl["declaration_id"].isin(i["declaration_id"])]
            groups = dict(zip(d["declaration_id"].astype("str"),
                              group_frame(d, level)["group_id"], strict=True))  # fmt: skip
            for did, res in zip(i["declaration_id"].astype("str"), i["result"], strict=True):
                if did in groups:
                    found[did] = (groups[did], str(res))
    with engine.connect() as conn:
        db_rows = conn.execute(
            sa.select(inspection_results.c.declaration_id, inspection_results.c.result).where(
                inspection_results.c.selection == "random",
                inspection_results.c.inspected_at >= start.to_pydatetime(),
                inspection_results.c.inspected_at < end.to_pydatetime(),
            )
        ).all()
        missing = [did for did, _ in db_rows if did not in found]
        audited: dict[str, str] = {}
        for chunk in range(0, len(missing), 500):
            ids = missing[chunk : chunk + 500]
            for did, text in conn.execute(
                sa.select(score_audit.c.declaration_id, score_audit.c.declaration_json).where(
                    score_audit.c.declaration_id.in_(ids)
                )
            ):
                if text and did not in audited:
                    try:
                        audited[did] = group_of(json.loads(text), level)
                    except KeyError:
                        continue
    store_groups = {did: g for did, (g, _) in found.items()}
    for did, res in db_rows:
        g = store_groups.get(did) or audited.get(did)
        if g is not None:
            found[did] = (g, str(res))
    out: dict[str, list[int]] = {}
    for g, res in found.values():
        c = out.setdefault(g, [0, 0])
        c[0] += 1
        c[1] += res == "nonconforming"
    return {g: (n, k) for g, (n, k) in out.items()}
