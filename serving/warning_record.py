"""The warnings' record for the committee: every decided warning with what followed.

For each warning beyond a mere proposal: the level it was proposed at and the most severe it
reached, how it ended (lifted on a passing effect evaluation, lifted with a recorded reason,
lapsed as an unconfirmed early notice, rejected, or still in force), and the results of the
matching declarations while its measures were in force (inspected, nonconforming, rate against
the baseline it was raised on). The committee judges the rules by this record; the page is
``/committee/warnings/record`` and the export ``/committee/warnings/record.csv``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import pandas as pd

from policy.warnings import Subject, as_utc, inspected_under_measure
from serving.csv_safe import safe_cell
from serving.warnings_store import WarningStore

RECORD_FIELDS: tuple[str, ...] = (
    "id",
    "subject_kind",
    "subject_key",
    "subject_label",
    "proposed_level",
    "most_severe_level",
    "level",
    "status",
    "outcome",
    "report_driven",
    "as_of",
    "activated_at",
    "ended_at",
    "days_in_force",
    "escalations",
    "fresh_evidence",
    "inspected_during",
    "nonconforming_during",
    "rate_during",
    "baseline_rate",
    "rate_over_baseline",
    "lifted_by_evaluation",
    "end_reason",
)
OUTCOMES: tuple[str, ...] = (
    "lifted on evaluation",
    "lifted with reason",
    "lapsed",
    "rejected",
    "in force",
    "approved",
)


def _ended_at(end: dict[str, Any]) -> pd.Timestamp:
    """When a warning ended in the world it was assessed in: the review or effect evaluation's
    own date when the transition carries one (a replay or a late review records its actions
    today, about a date weeks earlier), else when the transition was recorded."""
    ev = end.get("evaluation") or {}
    when = ev.get("as_of") or ev.get("period_end")
    return as_utc(when) if when else as_utc(end["at"])


def _outcome(status: str, end: dict[str, Any] | None) -> str:
    if status == "lifted":
        passed = bool(end and (end.get("evaluation") or {}).get("passed"))
        return "lifted on evaluation" if passed else "lifted with reason"
    if status == "active":
        return "in force"
    return status


def record_rows(
    store: WarningStore, tables: dict[str, pd.DataFrame], now: Any = None
) -> list[dict[str, Any]]:
    """One row per warning that was decided (not merely proposed), newest first.

    Parameters
    ----------
    store
        The warning store.
    tables
        The ingested tables (results under the measure are counted from them).
    now
        End of the period for warnings still in force (default: the latest declaration, or
        the clock when earlier).
    """
    decl = tables["declarations"]
    latest = decl["declared_at"].max() if len(decl) else pd.Timestamp.now(tz="UTC")
    end_open = as_utc(now) if now is not None else min(pd.Timestamp.now(tz="UTC"), latest)
    rows: list[dict[str, Any]] = []
    for w in store.list(limit=100_000):
        if w["status"] == "proposed":
            continue
        trans = store.transitions(w["id"])
        levels = [int(t["to_level"]) for t in trans] or [int(w["level"])]
        proposed_level = levels[0]
        raised = [t for t in trans if t["from_level"] and int(t["to_level"]) < int(t["from_level"])]
        closing = [t for t in trans if t["action"] in ("lift", "lapse", "reject")]
        end = closing[-1] if closing else None
        ended_at = _ended_at(end) if end else None
        a = w.get("assessment") or {}
        baseline = a.get("baseline")
        row: dict[str, Any] = {
            "id": w["id"],
            "subject_kind": w["subject_kind"],
            "subject_key": w["subject_key"],
            "subject_label": w["subject_label"],
            "proposed_level": proposed_level,
            "most_severe_level": min(levels),
            "level": int(w["level"]),
            "status": w["status"],
            "outcome": _outcome(w["status"], end),
            "report_driven": bool(a.get("report_driven")),
            "as_of": (w["as_of"] or "")[:10],
            "activated_at": (w.get("activated_at") or "")[:10] or None,
            "ended_at": ended_at.date().isoformat() if ended_at is not None else None,
            "escalations": len(raised),
            # fresh reports recorded on it while open (policy.warnings.fresh_evidence)
            "fresh_evidence": sum(t["action"] == "fresh-evidence" for t in trans),
            "inspected_during": None,
            "nonconforming_during": None,
            "rate_during": None,
            "baseline_rate": baseline,
            "rate_over_baseline": None,
            "days_in_force": None,
            "lifted_by_evaluation": w["status"] == "lifted"
            and bool(end and (end.get("evaluation") or {}).get("passed")),
            "end_reason": end.get("reason") if end else None,
        }
        if w.get("activated_at"):
            start = as_utc(w["activated_at"])
            stop = ended_at if ended_at is not None else end_open
            subject = Subject.parse(w["subject_kind"], w["subject_key"])
            n, k = inspected_under_measure(subject, tables, start, stop)
            rate = k / n if n else None
            row.update(
                inspected_during=n,
                nonconforming_during=k,
                rate_during=rate,
                days_in_force=max(0, (stop - start).days),
                rate_over_baseline=rate / baseline if rate is not None and baseline else None,
            )
        rows.append(row)
    rows.sort(key=lambda r: (r["as_of"], r["id"]), reverse=True)
    return rows


def record_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts by outcome, and how often results under the measure stayed above baseline."""
    by = {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}
    measured = [r for r in rows if r["rate_over_baseline"] is not None]
    return {
        "warnings": len(rows),
        "by_outcome": by,
        "report_driven": sum(r["report_driven"] for r in rows),
        "with_results": len(measured),
        "above_baseline": sum(r["rate_over_baseline"] > 1.0 for r in measured),
    }


def record_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The record as CSV (header = :data:`RECORD_FIELDS`; empty cell for null; text that
    starts like a formula prefixed with ``'``, see :mod:`serving.csv_safe`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(RECORD_FIELDS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else safe_cell(r[k]) for k in RECORD_FIELDS})
    return buf.getvalue()
