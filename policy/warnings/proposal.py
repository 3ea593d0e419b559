"""Proposals: assess, drop nested duplicates, skip open subjects and cool-downs, rank, cap and
build the warning records (level, publication type, scope, matters, measures)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import pandas as pd

from policy.warnings.assessment import Assessment, as_utc, assess, notice_candidates
from policy.warnings.config import LEVELS, PUBLICATION_PURPOSES, load_warning_config
from policy.warnings.measures import measures_for_level
from policy.warnings.subjects import Subject


def _suppress_nested(
    assessments: list[Assessment], tables: dict[str, pd.DataFrame], config: dict[str, Any]
) -> list[Assessment]:
    """Drop broader or trader subjects already explained by a product x origin warning.

    An outbreak in HS4 x origin also lifts its HS4, its origin and the importers of that
    product; one warning on the narrowest product subject serves the committee better. A
    broader subject stays when it is more severe than every narrow one inside it; an enterprise
    or overseas party stays unless half or more of its recent bad results fall inside one.
    """
    narrow = [a for a in assessments if a.subject.kind == "hs4_origin"]
    if not narrow:
        return assessments
    keep: list[Assessment] = []
    insp = tables.get("inspections")
    decl = tables["declarations"]
    for a in assessments:
        kind = a.subject.kind
        if kind == "hs4":
            inside = [x for x in narrow if x.subject.key[0] == a.subject.key[0]]
            if inside and a.level >= min(x.level for x in inside):
                continue
        elif kind == "origin":
            inside = [x for x in narrow if x.subject.key[1] == a.subject.key[0]]
            if inside and a.level >= min(x.level for x in inside):
                continue
        elif kind in ("enterprise", "overseas_party") and insp is not None and len(insp):
            t = as_utc(a.as_of)
            w_start = t - pd.Timedelta(days=int(config["window_days"]))
            recent = insp[
                (insp["inspected_at"] > w_start)
                & (insp["inspected_at"] <= t)
                & (insp["result"] == "nonconforming")
            ]
            d = decl[decl["declaration_id"].isin(recent["declaration_id"])]
            d = d[a.subject.mask(d)]
            if len(d):
                covered = np.zeros(len(d), dtype=bool)
                for x in narrow:
                    covered |= x.subject.mask(d)
                if covered.mean() >= 0.5:
                    continue
        keep.append(a)
    return keep


def warning_id_for(subject: Subject, as_of: Any) -> str:
    """A stable id: the same subject proposed on the same day gets the same id."""
    t = as_utc(as_of)
    digest = hashlib.sha256(f"{subject.kind}|{subject.key_str}".encode()).hexdigest()[:8]
    return f"W{t.strftime('%Y%m%d')}-{digest}"


_TITLE = re.compile(r"^关于(?P<label>.*)的[ⅠⅡⅢⅣ]级（[^）]*）风险预警$")


def warning_title(label: str, level: int) -> str:
    """The publication's title, which names the level (so it changes when the level does)."""
    numeral, name_zh, _ = LEVELS[level]
    return f"关于{label}的{numeral}级（{name_zh}）风险预警"


def retitle(title: str, level: int) -> str:
    """``title`` naming ``level`` instead (a title of another form is kept as written)."""
    match = _TITLE.match(title)
    return warning_title(match["label"], level) if match else title


def build_warning(
    assessment: Assessment, config: dict[str, Any], proposed_by: str = "system"
) -> dict[str, Any]:
    """A warning record (not yet stored) from an assessment: level, publication type, scope,
    matters covered and measures."""
    a = assessment
    level = a.level
    numeral, name_zh, colour = LEVELS[level]
    pub = config["publication"][level]
    hazard = a.hazard or "unspecified"
    matters = (
        f"{a.subject.label}: {a.nonconforming}/{a.inspected} nonconforming in the last "
        f"{config['window_days']} days (baseline {a.baseline:.1%}); dominant hazard {hazard}; "
        f"{a.critical} critical, {a.major} major"
    )
    if a.signals:
        matters += f"; {a.signals:g} risk signals"
    review_until = None
    if a.report_driven:
        review_until = as_utc(a.as_of) + pd.Timedelta(
            days=int(config["early_notice"]["review_days"])
        )
        matters = (
            f"{a.subject.label}: early notice on {a.signals:g} reports from {a.signal_sources} "
            f"independent channels/sources ({a.signals_expected:.2f} expected); "
            f"report-driven, awaiting results: confirmed or escalated when results show an "
            f"excess, lapses by itself on {review_until.date().isoformat()} otherwise"
        )
    if a.category == "credit_supervision":
        matters += "; no trusted own history: referred for credit supervision"
    return {
        "id": warning_id_for(a.subject, a.as_of),
        "subject_kind": a.subject.kind,
        "subject_key": a.subject.key_str,
        "subject_label": a.subject.label,
        "level": level,
        "level_name": f"{numeral}级 {name_zh}",
        "colour": colour,
        "status": "proposed",
        "publication_type": pub,
        "publication_purpose": PUBLICATION_PURPOSES[pub],
        "title": warning_title(a.subject.label, level),
        "matters": matters,
        "hazard": a.hazard,
        "scope": {
            "declarations": a.declarations,
            "value_usd": round(a.value_usd, 2),
            "ports": a.ports,
            "enterprises": a.enterprises,
            "window_start": a.window_start,
            "as_of": a.as_of,
        },
        "measures": measures_for_level(level, a.subject.kind, config),
        "assessment": a.to_dict(),
        "as_of": a.as_of,
        "category": a.category,
        "report_driven": a.report_driven,
        "review_until": review_until.isoformat() if review_until is not None else None,
        "proposed_by": proposed_by,
    }


def _history_days(tables: dict[str, pd.DataFrame], window_start: pd.Timestamp) -> float:
    """Days of inspection results before the window (how much baseline there is at all)."""
    insp = tables.get("inspections")
    if insp is None or insp.empty:
        return 0.0
    first = insp["inspected_at"].min()
    return max(0.0, (window_start - first).total_seconds() / 86400)


def _rank_key(a: Assessment) -> tuple:
    # most severe first, then product subjects before traders, then the strongest evidence
    return (
        a.level,
        a.category != "outbreak",
        -a.lift,
        -a.signals,
        a.subject.kind,
        a.subject.key_str,
    )


def propose(
    tables: dict[str, pd.DataFrame],
    as_of: Any,
    config: dict[str, Any] | None = None,
    scores: pd.DataFrame | None = None,
    open_subjects: set[tuple[str, str]] | None = None,
    recently_closed: dict[tuple[str, str], dict[str, Any]] | None = None,
    notices_only: bool = False,
) -> list[dict[str, Any]]:
    """Warning proposals at ``as_of``: assess, suppress nested duplicates, skip open subjects
    and subjects in their cool-down, rank and cap.

    Parameters
    ----------
    open_subjects
        ``(subject_kind, subject_key)`` pairs that already have an open warning (proposed,
        approved or active); they are not proposed again.
    recently_closed
        ``(subject_kind, subject_key)`` -> ``{"level": int, "closed_at": time, "lapsed":
        bool}`` of warnings lifted, rejected or lapsed lately. Within
        ``proposals.cooldown_days`` of ``closed_at`` a lifted or rejected subject is proposed
        again only at a strictly more severe level than it had; a lapsed early notice (closed
        for want of results, ``lapsed: True``) has no cool-down: fresh reports or results
        about it are heard at once (they must be surprising against a history that now holds
        the reports of the lapsed notice).
    notices_only
        The nightly check of reports (``early_notice.check``): only the subjects whose reports
        alone make an early notice (:func:`~policy.warnings.assessment.notice_candidates`)
        are assessed, and their report-driven notices are proposed, exactly as the full weekly
        ``propose`` would propose them. A candidate whose results already grade an excess
        waits for the weekly run like every other subject: graded mid-week it was proposed
        one level too severe on the 1M replay (3304/KR Ⅱ on a Thursday, Ⅲ at the weekly run).

    Notes
    -----
    During the warm-up (less than ``proposals.warmup_days`` of results before the window) only
    the ``proposals.warmup_kinds`` are proposed: trader baselines are too short to tell a
    change from chronic risk. At most ``proposals.max_per_run`` proposals are returned, most
    severe first.
    """
    cfg = config or load_warning_config()
    pc = cfg["proposals"]
    t = as_utc(as_of)
    skip = open_subjects or set()
    if notices_only:
        subjects = [
            s for s in notice_candidates(tables, as_of, cfg) if (s.kind, s.key_str) not in skip
        ]
        found = [
            a for a in (assess(tables, as_of, cfg, scores=scores, subjects=subjects)
                        if subjects else []) if a.level > 0 and a.report_driven
        ]  # fmt: skip
    else:
        found = _suppress_nested(assess(tables, as_of, cfg, scores=scores), tables, cfg)
    w_start = t - pd.Timedelta(days=int(cfg["window_days"]))
    if _history_days(tables, w_start) < float(pc["warmup_days"]):
        found = [a for a in found if a.subject.kind in pc["warmup_kinds"]]
    closed = recently_closed or {}
    cool = pd.Timedelta(days=int(pc["cooldown_days"]))
    keep: list[Assessment] = []
    for a in found:
        key = (a.subject.kind, a.subject.key_str)
        if key in skip:
            continue
        prev = closed.get(key)
        # a lapse is not a lift: the notice closed for want of results, no measure was shown
        # to work, so fresh evidence about the subject is heard at once
        lapsed = prev is not None and bool(prev.get("lapsed"))
        recent = prev is not None and not lapsed and t - as_utc(prev["closed_at"]) < cool
        if recent and prev is not None and a.level >= int(prev["level"]):
            continue  # not clearly stronger than the warning just closed
        keep.append(a)
    keep.sort(key=_rank_key)
    cap = pc.get("max_per_run")
    if cap:
        keep = keep[: int(cap)]
    return [build_warning(a, cfg) for a in keep]
