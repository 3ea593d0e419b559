"""What the committee pages show, read from the store tables, the audit log, the warning store
and the model bundle (no request, no template here)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from policy.warnings import LEVELS, Subject, signal_matches
from serving.audit import score_audit
from serving.explanations import answered

SEARCH_LIMIT = 20
WARNING_STATUS_ORDER = ("proposed", "active", "rejected", "lifted", "lapsed")
MODEL_CARD_SUBSETS = (("random_sample", "随机监测样本 random monitoring sample"),
                      ("all_inspected", "全部已查验 all inspected"))  # fmt: skip


def row_dict(row: pd.Series) -> dict[str, Any]:
    """A table row as plain Python values (missing values as None)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            out[str(k)] = None
        elif isinstance(v, np.generic):
            out[str(k)] = v.item()
        else:
            out[str(k)] = v
    return out


def warnings_by_state(
    warnings: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """(warnings waiting for a decision, warnings in force by level)."""
    proposed = [w for w in warnings if w["status"] == "proposed"]
    in_force: dict[int, list[dict[str, Any]]] = {lv: [] for lv in LEVELS}
    for w in warnings:
        if w["status"] == "active":
            in_force.setdefault(w["level"], []).append(w)
    return proposed, in_force


def warning_counts(warnings: list[dict[str, Any]]) -> dict[tuple[int, str], int]:
    """Number of warnings per (level, status)."""
    counts: dict[tuple[int, str], int] = {}
    for w in warnings:
        counts[(w["level"], w["status"])] = counts.get((w["level"], w["status"]), 0) + 1
    return counts


def headline_rows(metrics: dict[str, Any], budget: float) -> list[dict[str, Any]]:
    """Model and baselines at the policy budget, on both test subsets."""
    key = f"{budget:g}"
    rows = []
    sources = [("model 模型", metrics.get("test", {}))]
    sources += sorted((metrics.get("baselines") or {}).items())
    for name, m in sources:
        entry = (m.get("budgets") or {}).get(key, {})
        rows.append({
            "name": name,
            "auc": (m.get("random_sample") or {}).get("auc"),
            "random_sample": entry.get("random_sample", {}),
            "all_inspected": entry.get("all_inspected", {}),
        })  # fmt: skip
    return rows


def random_critical_defined(rows: list[dict[str, Any]]) -> bool:
    """Whether the random sample of the test period held a critical nonconformity, i.e. whether
    its critical recall is defined for any row of :func:`headline_rows`."""
    values = (r["random_sample"].get("critical_recall") for r in rows)
    return any(isinstance(v, int | float) and math.isfinite(v) for v in values)


def default_assessment_day(tables: dict[str, pd.DataFrame], today: pd.Timestamp) -> str:
    """The day the propose form offers: the latest declaration day held, never after today.

    An assessment as of today would look at weeks the store has no data for yet (results
    arrive later), so the committee would be shown an empty window by default.
    """
    latest = tables["declarations"]["declared_at"].max()
    day = today if pd.isna(latest) else min(pd.Timestamp(latest), today)
    return str(day.date())


def search(
    tables: dict[str, pd.DataFrame], engine: Engine, warnings: list[dict[str, Any]], q: str
) -> dict[str, Any]:
    """Declarations, enterprises and warning subjects matching ``q`` (an id, an HS4 code, an
    origin country or an overseas party)."""
    results: dict[str, Any] = {"declarations": [], "enterprises": [], "subjects": []}
    if not q:
        return results
    decl = tables["declarations"]
    needle = q.upper()
    ids = decl["declaration_id"].astype("str")
    hit = decl[ids.str.upper() == needle]
    results["declarations"] = hit["declaration_id"].astype("str").head(SEARCH_LIMIT).tolist()
    with engine.connect() as conn:
        audited = conn.execute(
            sa.select(score_audit.c.declaration_id).where(
                score_audit.c.declaration_id == q
            ).limit(5)
        ).scalars().all()  # fmt: skip
    for d in audited:
        if d not in results["declarations"]:
            results["declarations"].append(d)
    ents = decl["enterprise_id"].astype("str")
    results["enterprises"] = sorted(set(ents[ents.str.upper() == needle]))[:SEARCH_LIMIT]
    subjects = []
    hs4 = decl["hs_code"].astype("str").str.slice(0, 4)
    if (hs4 == q).any():
        subjects.append(("hs4", q, int((hs4 == q).sum())))
    origin = decl["origin_country"].astype("str").str.upper()
    if (origin == needle).any():
        subjects.append(("origin", needle, int((origin == needle).sum())))
    party = decl["overseas_party_id"].astype("str")
    if (party.str.upper() == needle).any():
        subjects.append(("overseas_party", q, int((party.str.upper() == needle).sum())))
    results["subjects"] = subjects
    results["warnings"] = [
        w for w in warnings
        if str(w["subject_key"]).upper() == needle or w["id"].upper() == needle
        or needle in str(w["subject_key"]).upper().split("/")
    ][:50]  # fmt: skip
    return results


def subject_history(
    tables: dict[str, pd.DataFrame], subject: Subject, end: pd.Timestamp, weeks: int = 26
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(weekly inspections and rate, the subject's recent declarations, its recent signals)."""
    start = end - pd.Timedelta(weeks=weeks)
    decl = tables["declarations"]
    d = decl[(decl["declared_at"] > start) & (decl["declared_at"] <= end)]
    d = d[subject.mask(d)]
    insp = tables.get("inspections")
    weekly = pd.DataFrame(columns=["inspected", "nonconforming", "rate"])
    if insp is not None and len(insp) and len(d):
        i = insp[insp["declaration_id"].isin(d["declaration_id"]) & (insp["inspected_at"] <= end)]
        if len(i):
            g = i.assign(bad=(i["result"] == "nonconforming")).set_index("inspected_at")
            weekly = g["bad"].resample("W").agg(["size", "sum"])
            weekly.columns = ["inspected", "nonconforming"]
            weekly["rate"] = weekly["nonconforming"] / weekly["inspected"].where(
                weekly["inspected"] > 0
            )
    sig = tables.get("risk_signals")
    signals = pd.DataFrame()
    if sig is not None and len(sig):
        s = sig[(sig["reported_at"] > start) & (sig["reported_at"] <= end)]
        # the assessment's own rule: HS4 sets and chapters included, with each signal's weight
        m = signal_matches(s, subject.kind)
        signals = m[m["key"] == subject.key_str].sort_values("reported_at", ascending=False)
    return weekly, d.sort_values("declared_at"), signals


def model_card(scorer: Any) -> dict[str, Any]:
    """The model card's figures from the bundle: metrics by budget and subset for the model and
    its baselines (``tables``; ``sources`` and ``budgets`` for the charts), the tiers."""
    metrics = scorer.bundle.metrics or {}
    test = metrics.get("test", {})
    sources = [("model 模型", test)] + sorted((metrics.get("baselines") or {}).items())
    budgets = sorted((test.get("budgets") or {}), key=float)
    tables = []
    for subset, label in MODEL_CARD_SUBSETS:
        rows = []
        for b in budgets:
            for name, m in sources:
                entry = ((m.get("budgets") or {}).get(b) or {}).get(subset) or {}
                rows.append({"budget": float(b), "name": name, **entry})
        tables.append({"subset": subset, "label": label, "rows": rows})
    policy = scorer.bundle.policy or {}
    shares = policy.get("tier_shares") or {}
    thresholds = policy.get("thresholds") or {}
    tier_rows = []
    for tier in sorted(thresholds, key=lambda t: -float(thresholds[t])):
        tier_rows.append({"tier": tier, "threshold": float(thresholds[tier]),
                          "share": shares.get(tier)})  # fmt: skip
    for tier in shares:
        if tier not in thresholds:
            tier_rows.append({"tier": tier, "threshold": None, "share": shares[tier]})
    return {
        "tables": tables,
        "sources": sources,
        "budgets": budgets,
        "tiers": tier_rows,
        "summary": {k: test.get(k) for k, _ in MODEL_CARD_SUBSETS if k in test},
        "ref": getattr(scorer, "ref", None),
        "policy": policy,
        "split": metrics.get("split", {}),
        "counts": metrics.get("counts", {}),
        "created_at": scorer.bundle.created_at,
        "explainer": scorer.explainer_name,
    }


def declaration_record(
    tables: dict[str, pd.DataFrame], engine: Engine, declaration_id: str
) -> dict[str, Any] | None:
    """A declaration as the store and the audit log have it (None when neither does): its
    fields, its inspection result, its audit rows and whether the store holds it."""
    audit = answered(engine, declaration_id)
    decl = tables["declarations"]
    match = decl[decl["declaration_id"] == declaration_id]
    if match.empty and not audit:
        return None
    row = row_dict(match.iloc[0]) if len(match) else dict(audit[0]["declaration"] or {})
    row.setdefault("declaration_id", declaration_id)
    insp = tables.get("inspections")
    result = None
    if insp is not None and len(insp):
        r = insp[insp["declaration_id"] == declaration_id]
        result = row_dict(r.iloc[0]) if len(r) else None
    return {"d": row, "result": result, "audit": audit, "in_store": bool(len(match))}


def enterprise_record(
    tables: dict[str, pd.DataFrame], mine: pd.DataFrame, enterprise_id: str
) -> dict[str, Any]:
    """An enterprise's inspections, registration row and latest credit rating, given its
    declarations ``mine``."""
    insp = tables.get("inspections")
    n_insp = n_bad = 0
    if insp is not None and len(insp):
        i = insp[insp["declaration_id"].isin(mine["declaration_id"])]
        n_insp, n_bad = len(i), int((i["result"] == "nonconforming").sum())
    info = None
    ent = tables.get("enterprises")
    if ent is not None and len(ent) and "enterprise_id" in ent:
        e = ent[ent["enterprise_id"] == enterprise_id]
        info = row_dict(e.iloc[0]) if len(e) else None
    credit = None
    cr = tables.get("credit_ratings")
    if cr is not None and len(cr) and "rating" in cr:
        c = cr[cr["enterprise_id"] == enterprise_id].sort_values("effective_from")
        credit = str(c["rating"].iloc[-1]) if len(c) else None
    return {"info": info, "credit": credit, "n_insp": n_insp, "n_bad": n_bad}
