"""Delay to the first warning for each planted outbreak, under each policy's revealed results.

The warning rules (``policy.warnings.propose``) run every ``step_days`` of the backtest on the
store's tables with the inspections replaced by what the policy revealed (pre-start history
included), as a committee would have seen them; a subject already proposed is not proposed
again. An outbreak (``outbreaks.json`` of the demo's ground truth) counts as warned when a
proposal between its start and its end plus :data:`GRACE_DAYS` names its HS4 x origin, its HS4
or its origin, or is about a subject whose window nonconformities are mostly the outbreak's
declarations (``benchmarks/bench_warnings.py`` uses the same rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from policy.warnings import Subject, load_warning_config, propose

GRACE_DAYS = 14


def _cause(
    w: dict[str, Any],
    live: list[dict[str, Any]],
    bad_results: pd.DataFrame,
    outbreak_of: pd.Series,
    days: int,
) -> str | None:
    subject = Subject.parse(w["subject_kind"], w["subject_key"])
    for o in live:
        k, key = subject.kind, subject.key
        if (
            (k == "hs4_origin" and key == (o["hs4"], o["origin_country"]))
            or (k == "hs4" and key[0] == o["hs4"])
            or (k == "origin" and key[0] == o["origin_country"])
        ):
            return str(o["id"])
    t = pd.Timestamp(w["as_of"])
    at = bad_results["inspected_at"]
    d = bad_results[(at > t - pd.Timedelta(days=days)) & (at <= t)]
    d = d[subject.mask(d)]
    if len(d):
        ob = outbreak_of.reindex(d["declaration_id"].astype("str")).dropna()
        if len(ob) and len(ob) / len(d) >= 0.5:
            return str(ob.mode().iloc[0])
    return None


def outbreak_delays(
    tables: dict[str, pd.DataFrame],
    inspections: pd.DataFrame,
    outbreaks: list[dict[str, Any]],
    truth: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    step_days: int,
) -> list[dict[str, Any]]:
    """Per planted outbreak that starts inside ``[start, end)``: the first warning's delay.

    Parameters
    ----------
    tables
        The store's tables (declarations, signals, credit: unchanged).
    inspections
        The results the policy revealed (contract ``inspections`` rows).
    outbreaks
        ``outbreaks.json`` of the ground truth.
    truth
        ``declaration_truth.parquet`` with ``outbreak_id`` (which declarations are inside).
    """
    cfg = load_warning_config()
    days = int(cfg["window_days"])
    mine = {**tables, "inspections": inspections}
    if "outbreak_id" in truth:
        outbreak_of = (
            truth.assign(declaration_id=truth["declaration_id"].astype("str"))
            .set_index("declaration_id")["outbreak_id"]
            .dropna()
            .astype("str")
        )
    else:
        outbreak_of = pd.Series(dtype="str")
    planted = []
    for o in outbreaks:
        t0 = pd.Timestamp(o["start"]).tz_convert("UTC")
        t1 = pd.Timestamp(o["end"]).tz_convert("UTC")
        if start <= t0 < end:
            planted.append({**o, "t0": t0, "t1": t1})
    if not planted:
        return []
    # The nonconforming results with their declarations, joined once (not once per proposal
    # over every declaration of the store): what a proposal's cause is looked up in.
    nc = inspections[inspections["result"] == "nonconforming"]
    decl = tables["declarations"]
    bad_results = decl[decl["declaration_id"].isin(nc["declaration_id"])].merge(
        nc[["declaration_id", "inspected_at"]].drop_duplicates("declaration_id", keep="last"),
        on="declaration_id",
    )
    proposed: set[tuple[str, str]] = set()
    first: dict[str, dict[str, Any]] = {}
    for as_of in pd.date_range(start, end, freq=f"{step_days}D", inclusive="left"):
        live = [o for o in planted if o["t0"] <= as_of <= o["t1"] + pd.Timedelta(days=GRACE_DAYS)]
        if not live:
            continue
        for w in propose(mine, as_of, cfg, open_subjects=proposed):
            proposed.add((w["subject_kind"], w["subject_key"]))
            cause = _cause(w, live, bad_results, outbreak_of, days)
            if cause is not None and cause not in first:
                first[cause] = {"as_of": as_of, "subject": f"{w['subject_kind']}:"
                                f"{w['subject_key']}", "level": int(w["level"])}  # fmt: skip
    out = []
    for o in planted:
        hit = first.get(str(o["id"]))
        delay = None if hit is None else int((hit["as_of"] - o["t0"].normalize()).days)
        out.append(
            {
                "id": str(o["id"]),
                "subject": f"{o['hs4']}/{o['origin_country']}",
                "start": str(o["start"])[:10],
                "end": str(o["end"])[:10],
                "planted_level": o.get("level"),
                "warned": hit is not None,
                "delay_days": delay,
                "first_subject": None if hit is None else hit["subject"],
                "first_level": None if hit is None else hit["level"],
            }
        )
    return out


def median_delay(rows: list[dict[str, Any]]) -> float | None:
    """Median delay over the warned outbreaks (None when none was warned)."""
    d = [r["delay_days"] for r in rows if r["delay_days"] is not None]
    return float(np.median(d)) if d else None
