"""Warnings on demo data: detection of the planted outbreaks, level, precision, delay.

Generates demo data (``demo.generate.write_demo_data``), ingests it (``features.ingest``) and
replays the committee week by week: every ``--step-days`` ``policy.warnings.propose`` runs at
that date with the subjects that already have an open warning skipped, and every
``--notice-step-days`` in between the nightly check of reports (``propose(...,
notices_only=True)``, the operating cadence of docs/warnings.md); a simulated committee
approves every proposal at once (start time = the proposal date) and lifts a warning when its
effect evaluation passes (nonconforming rate of matching declarations inspected since it
started, over at most ``lift.period_days``, at or below ``lift.threshold_factor`` x baseline).

Measured against ``ground_truth/outbreaks.json`` and ``ground_truth/declaration_truth.parquet``
(which no pipeline reads):

- detection: an outbreak is detected when a warning about it (its HS4 x origin, its HS4, its
  origin, or an enterprise/overseas party whose window nonconformities are mostly inside it) is
  proposed between its start and its end + ``GRACE_DAYS``, within ``--max-delay`` days;
- delay: days from the outbreak's start to the first such proposal;
- level: the first and the most severe level proposed against the planted level;
- precision: the share of proposals with a planted cause (the subject overlaps an outbreak that
  is under way, or half or more of its window nonconformities are outbreak declarations); also
  the share whose subject's true nonconformity probability (oracle) in the window is at least
  twice the all-declaration mean (risk that is real even without a planted outbreak).

Usage: ``.venv/bin/python benchmarks/bench_warnings.py [--declarations 1000000]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from provenance import git_commit  # benchmarks/provenance.py

from policy.warnings import (
    Subject,
    assess,
    evaluate_effect,
    fresh_evidence,
    is_report_driven,
    load_warning_config,
    notice_tests,
    propose,
    review_notice,
    signal_matches,
)

RESULTS = Path(__file__).resolve().parent / "results"
GRACE_DAYS = 14


def machine() -> dict[str, Any]:
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) // 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "ram_mib": mem, "python": platform.python_version()}


def _window_bad(
    tables: dict[str, pd.DataFrame], subject: Subject, as_of: pd.Timestamp, days: int
) -> pd.DataFrame:
    insp = tables["inspections"]
    w = insp[
        (insp["inspected_at"] > as_of - pd.Timedelta(days=days))
        & (insp["inspected_at"] <= as_of)
        & (insp["result"] == "nonconforming")
    ]
    decl = tables["declarations"]
    d = decl[decl["declaration_id"].isin(w["declaration_id"])]
    return d[subject.mask(d)]


def cause_of(
    w: dict[str, Any],
    outbreaks: list[dict[str, Any]],
    tables: dict[str, pd.DataFrame],
    truth: pd.Series,
    days: int,
) -> str | None:
    """The planted outbreak a warning is about, or None."""
    subject = Subject.parse(w["subject_kind"], w["subject_key"])
    t = pd.Timestamp(w["as_of"])
    live = [o for o in outbreaks if o["t0"] <= t <= o["t1"] + pd.Timedelta(days=GRACE_DAYS)]
    for o in live:
        k = subject.kind
        key = subject.key
        if (
            (k == "hs4_origin" and key == (o["hs4"], o["origin_country"]))
            or (k == "hs4" and key[0] == o["hs4"])
            or (k == "origin" and key[0] == o["origin_country"])
        ):
            return str(o["id"])
    bad = _window_bad(tables, subject, t, days)
    if len(bad):
        ob = truth.reindex(bad["declaration_id"]).dropna()
        if len(ob) and len(ob) / len(bad) >= 0.5:
            return str(ob.mode().iloc[0])
    return None


def true_lift(
    w: dict[str, Any], tables: dict[str, pd.DataFrame], p_true: pd.Series, days: int
) -> float:
    """Oracle: mean true probability of the subject's window declarations over the mean of all."""
    t = pd.Timestamp(w["as_of"])
    decl = tables["declarations"]
    d = decl[(decl["declared_at"] > t - pd.Timedelta(days=days)) & (decl["declared_at"] <= t)]
    m = Subject.parse(w["subject_kind"], w["subject_key"]).mask(d)
    if not m.any():
        return float("nan")
    p = p_true.reindex(d["declaration_id"]).to_numpy()
    return float(np.nanmean(p[m]) / np.nanmean(p))


def early_evidence(
    o: dict[str, Any], tables: dict[str, pd.DataFrame], ob_of: pd.Series, days: int = 30
) -> tuple[int, int]:
    """Reports about an outbreak's HS4 x origin, and nonconforming results of its declarations,
    known in its first ``days`` days (what a warning could have been raised on)."""
    end = o["t0"] + pd.Timedelta(days=days)
    sig = tables.get("risk_signals")
    reports = 0
    if sig is not None and len(sig):
        w = sig[(sig["reported_at"] >= o["t0"]) & (sig["reported_at"] <= end)]
        m = signal_matches(w, "hs4_origin")
        reports = int((m["key"] == f"{o['hs4']}/{o['origin_country']}").sum())
    insp = tables["inspections"]
    i = insp[(insp["inspected_at"] >= o["t0"]) & (insp["inspected_at"] <= end)]
    i = i[i["result"] == "nonconforming"]
    inside = ob_of.reindex(i["declaration_id"].astype("str")).to_numpy() == str(o["id"])
    return reports, int(inside.sum())


def run(
    n_declarations: int,
    seed: int,
    step_days: int,
    max_delay: int,
    work: Path,
    reuse: bool = False,
    world: str | None = None,
    signal_intensity: float | None = None,
    notice_step_days: int = 1,
) -> dict:
    from demo.generate import write_demo_data
    from features.ingest import ingest
    from features.store import Store

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fresh = not (reuse and (work / "store").exists())
    if fresh:  # --reuse: a store generated before with the same size and seed
        variant: dict[str, Any] = {}
        if world is not None:
            variant["world"] = world
        if signal_intensity is not None:
            variant["signal_intensity"] = signal_intensity
        write_demo_data(work / "demo", n_declarations, seed, **variant)
    timings["generate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if fresh:
        ingest(work / "demo", work / "store")
    tables = Store(work / "store").tables()
    timings["ingest_and_read_s"] = time.perf_counter() - t0
    gt = work / "demo" / "ground_truth"
    outbreaks = json.loads((gt / "outbreaks.json").read_text(encoding="utf-8"))
    for o in outbreaks:
        o["t0"] = pd.Timestamp(o["start"]).tz_convert("UTC")
        o["t1"] = pd.Timestamp(o["end"]).tz_convert("UTC")
    truth = pd.read_parquet(gt / "declaration_truth.parquet")
    truth["declaration_id"] = truth["declaration_id"].astype("str")
    ob_of = truth.set_index("declaration_id")["outbreak_id"].dropna().astype("str")
    p_true = truth.set_index("declaration_id")["p_true"].astype("float64")

    cfg = load_warning_config()
    days = int(cfg["window_days"])
    first = tables["declarations"]["declared_at"].min()
    last = tables["declarations"]["declared_at"].max()
    # 200 days of history before the first assessment: a baseline for most subjects (thin
    # histories shrink to the all-subject rate), and the earliest planted outbreak is after it
    dates = pd.date_range(first + pd.Timedelta(days=200), last, freq=f"{step_days}D")
    open_w: dict[tuple[str, str], dict[str, Any]] = {}
    closed: dict[tuple[str, str], dict[str, Any]] = {}
    proposals: list[dict[str, Any]] = []
    lifted = 0
    lapsed = 0
    confirmed = 0
    escalations: list[dict[str, Any]] = []
    # fresh reports recorded on an open warning (policy.warnings.fresh_evidence)
    fresh_records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    per_step: list[float] = []
    notice_s = 0.0
    # the operating cadence (docs/warnings.md): the full assessment every step_days, and in
    # between the nightly check of reports (`guomen warnings propose --notices-only`)
    weekly = set(dates)
    checks = dates
    if 0 < notice_step_days < step_days:
        checks = pd.DatetimeIndex(
            sorted(weekly | set(pd.date_range(dates[0], dates[-1], freq=f"{notice_step_days}D")))
        )
    for as_of in checks:
        s0 = time.perf_counter()
        if as_of not in weekly:
            made = propose(tables, as_of, cfg, open_subjects=set(open_w),
                           recently_closed=closed, notices_only=True)  # fmt: skip
            for w in made:
                w["activated_at"] = w["as_of"]
                w["first_level"] = w["max_level"] = w["level"]
                open_w[(w["subject_kind"], w["subject_key"])] = w
                proposals.append(w)
            notice_s += time.perf_counter() - s0
            continue
        for key, w in list(open_w.items()):
            ev = evaluate_effect(w, tables, as_of, cfg)
            if ev.passed:
                w["lifted_at"] = str(as_of.date())
                del open_w[key]
                closed[key] = {"level": w["level"], "closed_at": as_of}
                lifted += 1
        # the committee escalates when a fresh assessment is more severe (one call for all)
        subjects = [Subject.parse(k, v) for k, v in open_w]
        reassessed = assess(tables, as_of, cfg, subjects=subjects) if subjects else []
        pending = [(w["id"], Subject.parse(*key), w["as_of"])
                   for key, w in open_w.items() if is_report_driven(w)]  # fmt: skip
        tests = notice_tests(tables, pending, as_of, cfg)
        for now in reassessed:
            key = (now.subject.kind, now.subject.key_str)
            w = open_w[key]
            test = tests.get(w["id"])
            review = review_notice(w, now, as_of, cfg, test) if is_report_driven(w) else None
            if review is not None and review[0] == "lapse":
                w["lapsed_at"] = str(as_of.date())
                del open_w[key]
                closed[key] = {"level": w["level"], "closed_at": as_of, "lapsed": True}
                lapsed += 1
                continue
            if review is not None:  # results confirm the report-driven notice
                w["confirmed_at"] = str(as_of.date())
                confirmed += 1
            if fresh_evidence(w, now, as_of, cfg, w.get("fresh_evidence_at")) is not None:
                w["fresh_evidence_at"] = as_of
                fresh_records.append({"id": w["id"], "as_of": str(as_of.date()),
                              "subject": f"{key[0]}:{key[1]}", "level": w["level"]})  # fmt: skip
            if 0 < now.level < w["level"]:
                escalations.append(
                    {"id": w["id"], "as_of": str(as_of.date()), "from": w["level"], "to": now.level}
                )
                w["level"] = now.level
                w["max_level"] = min(w["max_level"], now.level)
        made = propose(tables, as_of, cfg, open_subjects=set(open_w), recently_closed=closed)
        for w in made:
            w["activated_at"] = w["as_of"]
            w["first_level"] = w["max_level"] = w["level"]
            open_w[(w["subject_kind"], w["subject_key"])] = w
            proposals.append(w)
        per_step.append(time.perf_counter() - s0)
    timings["replay_s"] = time.perf_counter() - t0
    timings["propose_step_median_s"] = float(np.median(per_step))
    timings["notice_checks_s"] = notice_s

    rows = []
    for w in proposals:
        cause = cause_of(w, outbreaks, tables, ob_of, days)
        rows.append(
            {
                "id": w["id"],
                "as_of": w["as_of"][:10],
                "subject": f"{w['subject_kind']}:{w['subject_key']}",
                "category": w.get("category", "outbreak"),
                "level": w["first_level"],
                "max_level": w["max_level"],
                "inspected": w["assessment"]["inspected"],
                "nonconforming": w["assessment"]["nonconforming"],
                "cause": cause,
                "true_lift": true_lift(w, tables, p_true, days),
                "lifted_at": w.get("lifted_at"),
                "report_driven": bool(w.get("report_driven")),
                "confirmed_at": w.get("confirmed_at"),
                "lapsed_at": w.get("lapsed_at"),
            }
        )
    frame = pd.DataFrame(rows)
    detections = []
    for o in outbreaks:
        mine = frame[frame["cause"] == o["id"]] if len(frame) else frame
        entry: dict[str, Any] = {
            "id": o["id"],
            "subject": f"{o['hs4']}/{o['origin_country']}",
            "start": o["start"][:10],
            "end": o["end"][:10],
            "planted_level": o["level"],
            "declarations_inside": o["declarations_inside"],
            "inspected_inside": o["inspected_inside"],
            "nonconforming_inside": o["nonconforming_inside"],
        }
        reports30, bad30 = early_evidence(o, tables, ob_of)
        entry.update(reports_first_30d=reports30, nonconforming_first_30d=bad30,
                     eligible_30d=bool(reports30 >= 2 or bad30 >= 2))  # fmt: skip
        # fresh reports on an open warning about its product x origin while it runs: put
        # before the committee, counted apart from proposals (docs/warnings.md)
        flagged = [
            (pd.Timestamp(f["as_of"], tz="UTC") - o["t0"].normalize()).days
            for f in fresh_records
            if f["subject"] == f"hs4_origin:{o['hs4']}/{o['origin_country']}"
        ]
        flagged = [d for d in flagged if 0 <= d <= (o["t1"] - o["t0"]).days + GRACE_DAYS]
        entry["fresh_evidence_day"] = min(flagged) if flagged else None
        if len(mine):
            firstw = mine.sort_values("as_of").iloc[0]
            delay = (pd.Timestamp(firstw["as_of"], tz="UTC") - o["t0"].normalize()).days
            entry.update(
                detected=bool(delay <= max_delay),
                detected_30d=bool(delay <= 30),
                detected_42d=bool(delay <= 42),
                first_report_driven=bool(firstw["report_driven"]),
                delay_days=int(delay),
                first_subject=firstw["subject"],
                first_level=int(firstw["level"]),
                max_level=int(mine["max_level"].min()),
                warnings=int(len(mine)),
            )
        else:
            entry.update(detected=False, detected_30d=False, detected_42d=False,
                         first_report_driven=False, delay_days=None, first_subject=None, first_level=None,
                         max_level=None, warnings=0)  # fmt: skip
        detections.append(entry)
    n_w = len(frame)
    with_cause = int(frame["cause"].notna().sum()) if n_w else 0
    real_risk = int(((frame["true_lift"] >= 2) | frame["cause"].notna()).sum()) if n_w else 0
    outb = frame[frame["category"] == "outbreak"] if n_w else frame
    n_o = len(outb)
    o_cause = int(outb["cause"].notna().sum()) if n_o else 0
    o_real = int(((outb["true_lift"] >= 2) | outb["cause"].notna()).sum()) if n_o else 0
    credit = frame[frame["category"] != "outbreak"] if n_w else frame
    c_real = int(((credit["true_lift"] >= 2) | credit["cause"].notna()).sum()) if len(credit) else 0
    detected = [d for d in detections if d["detected"]]
    level_match = [d for d in detected if d["first_level"] == d["planted_level"]]
    level_near = [d for d in detected if abs(d["first_level"] - d["planted_level"]) <= 1]
    eligible = [d for d in detections if d["eligible_30d"]]
    years = (dates[-1] - dates[0]).days / 365.25
    no_cause = n_w - with_cause
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(Path(__file__).resolve().parent),
        "machine": machine(),
        "load_average": list(os.getloadavg()),
        "declarations": n_declarations,
        "seed": seed,
        "world": world or "default",
        "signal_intensity": 1.0 if signal_intensity is None else signal_intensity,
        "step_days": step_days,
        "notice_step_days": notice_step_days,
        "max_delay_days": max_delay,
        "assessment_dates": len(dates),
        "first_assessment": str(dates[0].date()),
        "last_assessment": str(dates[-1].date()),
        "config": {"window_days": days, "lift": cfg["lift"], "likelihood": cfg["likelihood"]},
        "timings": timings,
        "outbreaks": detections,
        "summary": {
            "outbreaks": len(outbreaks),
            "detected": len(detected),
            "detected_30d": sum(d["detected_30d"] for d in detections),
            "detected_42d": sum(d["detected_42d"] for d in detections),
            "eligible_30d": len(eligible),
            "eligible_detected_30d": sum(d["detected_30d"] for d in eligible),
            "eligible_detected_or_fresh_evidence_30d": sum(
                d["detected_30d"]
                or (d["fresh_evidence_day"] is not None and d["fresh_evidence_day"] <= 30)
                for d in eligible
            ),
            "fresh_evidence_records": len(fresh_records),
            "eligible_share_detected_30d": (
                sum(d["detected_30d"] for d in eligible) / len(eligible) if eligible else None
            ),
            "replay_years": round(years, 2),
            "without_planted_cause": no_cause,
            "without_planted_cause_per_year": no_cause / years if years else None,
            "report_driven_notices": int(frame["report_driven"].sum()) if n_w else 0,
            "notices_confirmed": confirmed,
            "notices_lapsed": lapsed,
            "median_delay_days": float(np.median([d["delay_days"] for d in detected]))
            if detected
            else None,
            "level_exact": len(level_match),
            "level_within_one": len(level_near),
            "warnings": n_w,
            "with_planted_cause": with_cause,
            "precision_planted": with_cause / n_w if n_w else None,
            "with_real_risk": real_risk,
            "precision_real_risk": real_risk / n_w if n_w else None,
            "outbreak_warnings": n_o,
            "outbreak_precision_planted": o_cause / n_o if n_o else None,
            "outbreak_precision_real_risk": o_real / n_o if n_o else None,
            "credit_referrals": int(len(credit)),
            "credit_real_risk": c_real,
            "lifted_by_evaluation": lifted,
            "escalations": len(escalations),
            "max_level_exact": len([d for d in detected if d["max_level"] == d["planted_level"]]),
            "max_level_within_one": len(
                [d for d in detected if abs(d["max_level"] - d["planted_level"]) <= 1]
            ),
        },
        "warnings": frame.replace({np.nan: None}).to_dict("records"),
        "escalations": escalations,
        "fresh_evidence": fresh_records,
    }


def markdown(r: dict[str, Any]) -> str:
    s = r["summary"]
    m = r["machine"]
    lines = [
        f"# Warnings on demo data ({r['date']})",
        "",
        f"Machine: {m['nproc']} cores, {m['ram_mib']} MiB RAM, Python {m['python']}. "
        f"{r['declarations']:,} demo declarations (seed {r['seed']}); `propose` every "
        f"{r['step_days']} days from {r['first_assessment']} to {r['last_assessment']} "
        f"({r['assessment_dates']} dates), committee approves every proposal, escalates when a fresh "
        f"assessment is more severe, lifts on a passing effect evaluation. Detection = a warning about the outbreak within "
        f"{r['max_delay_days']} days of its start.",
        "",
        f"- outbreaks detected: **{s['detected']}/{s['outbreaks']}**, median delay "
        f"**{s['median_delay_days']} days**",
        f"- first level = planted level: {s['level_exact']}/{s['detected']}; within one level: "
        f"{s['level_within_one']}/{s['detected']}; most severe level reached after the committee's "
        f"escalations: exact {s['max_level_exact']}/{s['detected']}, within one "
        f"{s['max_level_within_one']}/{s['detected']} ({s['escalations']} escalations)",
        f"- warnings: {s['warnings']}; with a planted cause: {s['with_planted_cause']} "
        f"(precision **{(s['precision_planted'] or 0):.0%}**); planted cause or true risk "
        f">= 2x the mean (oracle): {s['with_real_risk']} ({(s['precision_real_risk'] or 0):.0%})",
        f"- of which outbreak warnings (product subjects, traders with a trusted own history): "
        f"{s['outbreak_warnings']}, planted cause "
        f"{(s['outbreak_precision_planted'] or 0):.0%}, planted cause or true risk >= 2x "
        f"{(s['outbreak_precision_real_risk'] or 0):.0%}; credit-supervision referrals "
        f"(traders without a trusted own history): {s['credit_referrals']}, of which "
        f"{s['credit_real_risk']} with a planted cause or true risk >= 2x",
        f"- lifted after a passing effect evaluation: {s['lifted_by_evaluation']}",
        f"- world **{r['world']}**, report intensity {r['signal_intensity']}x; detected within "
        f"30 days {s['detected_30d']}/{s['outbreaks']}, within 42 days "
        f"{s['detected_42d']}/{s['outbreaks']}; outbreaks whose first 30 days hold >= 2 reports "
        f"or >= 2 nonconforming results: {s['eligible_30d']}, of which proposed within 30 days "
        f"{s['eligible_detected_30d']}; warnings without a planted cause "
        f"{s['without_planted_cause']} in {s['replay_years']} years "
        f"({(s['without_planted_cause_per_year'] or 0):.1f} a year); report-driven early "
        f"notices {s['report_driven_notices']} (confirmed by results {s['notices_confirmed']}, "
        f"lapsed {s['notices_lapsed']}); load average {r['load_average'][0]:.1f}",
        f"- time: replay {r['timings']['replay_s']:.1f} s; one step (evaluate and re-assess the "
        f"open warnings, then `propose`) {r['timings']['propose_step_median_s'] * 1000:.0f} ms "
        f"(median); demo generation {r['timings']['generate_s']:.0f} s, ingest "
        f"{r['timings']['ingest_and_read_s']:.0f} s",
        "",
        "| outbreak | subject | start | planted level | inspected / nonconforming inside | "
        "reports / nonconforming in first 30 days | "
        "detected | delay (days) | first warning | first level | most severe |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in r["outbreaks"]:
        lines.append(
            f"| {d['id']} | {d['subject']} | {d['start']} | {d['planted_level']} | "
            f"{d['inspected_inside']} / {d['nonconforming_inside']} | "
            f"{d['reports_first_30d']} / {d['nonconforming_first_30d']} | "
            f"{'yes' if d['detected'] else 'no'} | {d['delay_days'] if d['delay_days'] is not None else '–'} | "
            f"{d['first_subject'] or '–'} | {d['first_level'] or '–'} | {d['max_level'] or '–'} |"
        )
    lines += ["", "Warnings without a planted cause:", ""]
    lines += [
        "| as of | subject | category | level | inspected | nonconforming | true lift |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in r["warnings"]:
        if w["cause"] is None:
            tl = w["true_lift"]
            lines.append(
                f"| {w['as_of']} | {w['subject']} | {w['category']} | {w['level']} | "
                f"{w['inspected']} | {w['nonconforming']} | {tl:.2f} |" if tl is not None else
                f"| {w['as_of']} | {w['subject']} | {w['category']} | {w['level']} | "
                f"{w['inspected']} | {w['nonconforming']} | – |"
            )  # fmt: skip
    return "\n".join(lines) + "\n"


MATRIX_WORLDS = (
    "default",
    "hs6_origin",
    "declarant",
    "overseas_hs4",
    "port_chapter",
    "attribute",
    "weak_enterprise",
)


def matrix_markdown(runs: list[dict[str, Any]]) -> str:
    """One row per world x report intensity: the issue's targets side by side."""
    lines = [
        "# Warnings across generator worlds and report intensities",
        "",
        "Each row: demo data of one world (`guomen demo-data --world W --signal-intensity X`), "
        "replayed week by week as in `warnings.md` (committee approves every proposal, "
        "escalates on a more severe reassessment, lifts on a passing effect evaluation; "
        "report-driven notices are confirmed by results or lapse after their review period). "
        "Eligible: outbreaks whose first 30 days hold >= 2 reports or >= 2 nonconforming "
        "results (target: >= 80 % of them proposed within 30 days); beside it, those proposed "
        "or put before the committee as fresh reports on a warning already open on their "
        "product x origin (`fresh-evidence`, not a proposal). Without cause: warnings "
        "with no planted outbreak behind them (target: <= 12 a year).",
        "",
        "| world | declarations | intensity | seed | detected <= 30 d | detected <= 42 d | "
        "eligible proposed <= 30 d | + fresh evidence <= 30 d | median delay (d) | max level exact | without cause "
        "(per year) | notices (confirmed / lapsed) | warnings | assessment / report check "
        "every (d) | replay s | load | date | commit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        s = r["summary"]
        share = s["eligible_share_detected_30d"]
        lines.append(
            f"| {r['world']} | {r['declarations']:,} | {r['signal_intensity']}x | {r['seed']} | "
            f"{s['detected_30d']}/{s['outbreaks']} | {s['detected_42d']}/{s['outbreaks']} | "
            f"{s['eligible_detected_30d']}/{s['eligible_30d']}"
            f"{f' ({share:.0%})' if share is not None else ''} | "
            f"{s.get('eligible_detected_or_fresh_evidence_30d', '-')} | {s['median_delay_days']} | "
            f"{s['max_level_exact']}/{s['detected']} | {s['without_planted_cause']} "
            f"({(s['without_planted_cause_per_year'] or 0):.1f}) | "
            f"{s['report_driven_notices']} ({s['notices_confirmed']} / {s['notices_lapsed']}) | "
            f"{s['warnings']} | {r['step_days']} / {r.get('notice_step_days', r['step_days'])} | "
            f"{r['timings']['replay_s']:.0f} | {r['load_average'][0]:.1f} | "
            f"{r['date'][:16]} | {r.get('commit') or '-'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--declarations", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--step-days", type=int, default=7, help="days between full assessments")
    ap.add_argument(
        "--notice-step-days",
        type=int,
        default=1,
        help="days between checks of reports for early notices (the nightly "
        "`guomen warnings propose --notices-only`; 0: only with the full assessment)",
    )
    ap.add_argument("--max-delay", type=int, default=42)
    ap.add_argument("--work", type=Path, default=None, help="folder for demo data and store")
    ap.add_argument("--reuse", action="store_true", help="reuse the store already in --work")
    ap.add_argument("--tag", default=None, help="results file suffix (default from size/seed)")
    ap.add_argument("--world", default=None, help="generator world (demo-data --world)")
    ap.add_argument("--signal-intensity", type=float, default=None, help="report intensity")
    ap.add_argument(
        "--matrix",
        default=None,
        help="run worlds x intensities, e.g. 'all:0.5,1,2' or 'default,hs6_origin:1'; "
        "results to warnings_worlds_<size>k.json/.md (rewritten after every run)",
    )
    ap.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="with --matrix: keep each world's demo data and store in DATA_ROOT/<world>_<x> "
        "and reuse them on the next run (generation is deterministic by world, seed, intensity)",
    )
    ap.add_argument(
        "--out",
        default=None,
        help="with --matrix: results file stem (default warnings_worlds_<size>k)",
    )
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.matrix:
        names, _, levels = args.matrix.partition(":")
        worlds = list(MATRIX_WORLDS) if names == "all" else names.split(",")
        intensities = [float(x) for x in (levels or "1").split(",")]
        out = RESULTS / (args.out or f"warnings_worlds_{args.declarations // 1000}k")
        runs: list[dict[str, Any]] = []
        if out.with_suffix(".json").exists():  # resume: keep the runs already measured
            runs = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["runs"]
        done = {(r["world"], r["signal_intensity"]) for r in runs}
        for world in worlds:
            for x in intensities:
                if (world, x) in done:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    work = Path(tmp)
                    if args.data_root is not None:
                        work = args.data_root / f"{world}_{x}"
                    r = run(args.declarations, args.seed, args.step_days, args.max_delay,
                            work, reuse=args.data_root is not None,
                            world=None if world == "default" else world,
                            signal_intensity=None if x == 1.0 else x,
                            notice_step_days=args.notice_step_days)  # fmt: skip
                r["world"], r["signal_intensity"] = world, x
                runs.append(r)
                out.with_suffix(".json").write_text(
                    json.dumps({"runs": runs}, indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8",
                )
                out.with_suffix(".md").write_text(matrix_markdown(runs), encoding="utf-8")
                print(matrix_markdown(runs[-1:]), flush=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        result = run(args.declarations, args.seed, args.step_days, args.max_delay, work,
                     args.reuse, args.world, args.signal_intensity,
                     args.notice_step_days)  # fmt: skip
    tag = args.tag
    if tag is None:  # warnings.md is 1M seed 7; others warnings_200k.md, warnings_200k_seed11.md
        size = "" if args.declarations == 1_000_000 else f"_{args.declarations // 1000}k"
        tag = size + ("" if args.seed == 7 else f"_seed{args.seed}")
    (RESULTS / f"warnings{tag}.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    (RESULTS / f"warnings{tag}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
