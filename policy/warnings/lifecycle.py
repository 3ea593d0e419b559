"""The lifecycle of a warning: statuses, the state machine and the effect evaluation that a
lift rests on. Persistence lives in ``serving/warnings_store.py``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from policy.warnings.assessment import Assessment, NoticeTest, as_utc
from policy.warnings.config import load_warning_config
from policy.warnings.subjects import Subject

STATUSES: tuple[str, ...] = ("proposed", "approved", "rejected", "active", "lifted", "lapsed")
OPEN_STATUSES: tuple[str, ...] = ("proposed", "approved", "active")
# what the committee does
ACTIONS: tuple[str, ...] = ("approve", "reject", "activate", "escalate", "de-escalate", "lift")
# what the review of open warnings does by itself: confirm or lapse a report-driven early
# notice (review_notice); put fresh evidence on an open warning before the committee
# (fresh_evidence: status and level unchanged)
REVIEW_ACTIONS: tuple[str, ...] = ("confirm", "lapse", "fresh-evidence")


class InvalidTransition(Exception):
    """A lifecycle action that the warning's current state does not allow (HTTP 409)."""


@dataclass(frozen=True)
class EffectEvaluation:
    """Nonconformity of matching declarations inspected under the measure, against a threshold."""

    period_start: str
    period_end: str
    inspected: int
    nonconforming: int
    rate: float | None
    threshold: float
    min_inspected: int
    passed: bool
    # an early notice still resting on reports: its results confirm it or it lapses at its
    # review (``review_notice``); a clean run of inspections is not an effect of a measure
    awaiting_confirmation: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inspected_under_measure(
    subject: Subject, tables: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp
) -> tuple[int, int]:
    """Inspected and nonconforming among the subject's declarations in [start, end]."""
    decl = tables["declarations"]
    d = decl[(decl["declared_at"] >= start) & (decl["declared_at"] <= end)]
    d = d[subject.mask(d)]
    insp = tables.get("inspections")
    if insp is None or not len(insp) or not len(d):
        return 0, 0
    i = insp[insp["declaration_id"].isin(d["declaration_id"]) & (insp["inspected_at"] <= end)]
    return len(i), int((i["result"] == "nonconforming").sum())


def evaluate_effect(
    warning: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    as_of: Any,
    config: dict[str, Any] | None = None,
    threshold: float | None = None,
    period_days: int | None = None,
) -> EffectEvaluation:
    """Effect of an active warning: matching declarations declared since it became active
    (at most ``period_days`` back from ``as_of``) and inspected by ``as_of``.

    It passes when at least ``lift.min_inspected`` were inspected and their nonconformity rate
    is at most ``threshold`` (default: ``lift.threshold_factor`` x the assessment's baseline).
    It never passes for a report-driven early notice that results have not confirmed
    (``awaiting_confirmation``): such a notice claims no risk on results that a measure could
    have reduced; its own review confirms it or lets it lapse.
    A thinly traded subject may not see ``min_inspected`` inspections in ``period_days``; the
    period then reaches back to the activation, so every inspection under the measure counts
    and the warning can still be lifted on evidence.
    """
    cfg = config or load_warning_config()
    lift = cfg["lift"]
    end = as_utc(as_of)
    days = int(period_days or lift["period_days"])
    start = end - pd.Timedelta(days=days)
    if warning.get("activated_at"):
        start = max(start, as_utc(warning["activated_at"]))
    if threshold is None:
        baseline = float(warning.get("assessment", {}).get("baseline", 0.05))
        threshold = float(lift["threshold_factor"]) * baseline
    subject = Subject.parse(warning["subject_kind"], warning["subject_key"])
    min_n = int(lift["min_inspected"])
    awaiting = is_report_driven(warning)
    n, k = inspected_under_measure(subject, tables, start, end)
    activated = warning.get("activated_at")
    if n < min_n and activated and as_utc(activated) < start:
        start = as_utc(activated)
        n, k = inspected_under_measure(subject, tables, start, end)
    rate = k / n if n else None
    return EffectEvaluation(
        period_start=start.isoformat(),
        period_end=end.isoformat(),
        inspected=n,
        nonconforming=k,
        rate=rate,
        threshold=float(threshold),
        min_inspected=min_n,
        passed=bool(rate is not None and n >= min_n and rate <= threshold and not awaiting),
        awaiting_confirmation=awaiting,
    )


def next_state(
    status: str,
    level: int,
    action: str,
    reason: str | None = None,
    evaluation: dict[str, Any] | None = None,
    new_level: int | None = None,
) -> tuple[str, int]:
    """The state after a lifecycle action, or :class:`InvalidTransition`.

    proposed -approve-> approved -activate-> active; proposed -reject-> rejected;
    active -escalate-> active at a more severe level (Ⅳ→Ⅲ→Ⅱ→Ⅰ); active -de-escalate-> active
    at a less severe level; active -lift-> lifted, only with a passing effect evaluation or a
    recorded reason. Rejected and lifted are final.

    The review of a report-driven early notice (:func:`review_notice`): any open status
    -confirm-> the same status at ``new_level`` (results confirm it; never less severe);
    any open status -lapse-> lapsed (final: the review period passed without results). Any open
    warning -fresh-evidence-> unchanged (:func:`fresh_evidence`: reports that arrived after it
    was raised would make a notice on their own; recorded for the committee to judge).
    """
    if action in REVIEW_ACTIONS:
        if status not in OPEN_STATUSES:
            raise InvalidTransition(f"cannot {action} a warning that is {status}")
        if action == "lapse":
            return "lapsed", level
        if action == "fresh-evidence":
            return status, level
        return status, min(level, int(new_level or level))
    if action not in ACTIONS:
        raise InvalidTransition(f"unknown action {action!r}")
    if action in ("approve", "reject"):
        if status != "proposed":
            raise InvalidTransition(f"cannot {action} a warning that is {status}")
        return ("approved" if action == "approve" else "rejected"), level
    if action == "activate":
        if status != "approved":
            raise InvalidTransition(f"cannot activate a warning that is {status}")
        return "active", level
    if status != "active":
        raise InvalidTransition(f"cannot {action} a warning that is {status}")
    if action == "escalate":
        if level <= 1:
            raise InvalidTransition("level Ⅰ is the most severe; cannot escalate")
        return "active", level - 1
    if action == "de-escalate":
        if level >= 4:
            raise InvalidTransition("level Ⅳ is the least severe; lift it instead")
        return "active", level + 1
    # lift
    passed = bool(evaluation and evaluation.get("passed"))
    if not passed and not (reason and reason.strip()):
        raise InvalidTransition(
            "an active warning is lifted only after a passing effect evaluation "
            "or with a recorded reason"
        )
    return "lifted", level


def is_report_driven(warning: dict[str, Any]) -> bool:
    """Whether a warning record is an early notice still resting on reports alone."""
    if warning.get("confirmed_at"):
        return False
    flag = warning.get("report_driven")
    if flag is None:
        flag = (warning.get("assessment") or {}).get("report_driven", False)
    return bool(flag)


def review_until(warning: dict[str, Any], config: dict[str, Any]) -> pd.Timestamp:
    """When a report-driven notice lapses unless results confirm it."""
    if warning.get("review_until"):
        return as_utc(warning["review_until"])
    days = int(config["early_notice"]["review_days"])
    return as_utc(warning["as_of"]) + pd.Timedelta(days=days)


def review_notice(
    warning: dict[str, Any],
    reassessment: Assessment | None,
    as_of: Any,
    config: dict[str, Any],
    test: NoticeTest | None = None,
) -> tuple[str, int] | None:
    """The review of an open report-driven early notice at ``as_of``.

    Parameters
    ----------
    warning
        The notice's record (``level``, ``status``, ``as_of``, ``report_driven`` or its
        ``assessment``, optionally ``review_until``).
    reassessment
        A fresh assessment of its subject at ``as_of`` (``assess(..., subjects=[...])``).
    test
        The notice's own test of its results since it was raised (``notice_tests``).

    Returns
    -------
    ("confirm", level), ("lapse", level) or None
        Confirm when the results since the notice exceed the subject's own earlier rate (the
        notice's test passed), or when the fresh assessment has a level on results, not on
        reports alone; the level is the more severe of the notice's and the fresh one on
        results. Lapse once the review period has passed without either. None: keep waiting
        (or not a report-driven open notice).
    """
    if warning.get("status", "proposed") not in OPEN_STATUSES or not is_report_driven(warning):
        return None
    level = int(warning["level"])
    on_results = (
        reassessment is not None and reassessment.level > 0 and not reassessment.report_driven
    )
    if on_results and reassessment is not None:
        return "confirm", min(level, int(reassessment.level))
    if test is not None and test.confirmed:
        return "confirm", level
    if as_utc(as_of) >= review_until(warning, config):
        return "lapse", level
    return None


def fresh_evidence(
    warning: dict[str, Any],
    reassessment: Assessment | None,
    as_of: Any,
    config: dict[str, Any],
    last_flagged: Any = None,
) -> str | None:
    """Whether fresh reports about a subject already under a warning go before the committee.

    An open warning keeps its subject out of new proposals, so an outbreak that begins under
    a warning raised for something else (or by chance) would never be proposed. When the
    reports of the current window alone pass the early-notice test
    (``reassessment.reports_make_notice``) and the warning was raised at least a window
    earlier (so none of those reports is the evidence it was raised on), the new evidence is
    recorded on the warning (transition ``fresh-evidence``, status and level unchanged): the
    committee decides whether to escalate. At most once a window per warning.

    Parameters
    ----------
    warning
        The open warning's record (``status``, ``as_of``).
    reassessment
        A fresh assessment of its subject at ``as_of``.
    last_flagged
        ``as_of`` of the last fresh-evidence record on this warning, if any.

    Returns
    -------
    str or None
        The reason to record (what the reports show), or None.
    """
    if reassessment is None or warning.get("status", "proposed") not in OPEN_STATUSES:
        return None
    if not reassessment.reports_make_notice:
        return None
    window = pd.Timedelta(days=int(config["window_days"]))
    t = as_utc(as_of)
    if t - as_utc(warning["as_of"]) < window:
        return None
    if last_flagged is not None and t - as_utc(last_flagged) < window:
        return None
    a = reassessment
    return (
        f"fresh evidence since the warning was raised: {a.signals:g} reports from "
        f"{a.signal_sources} independent voices in the last {config['window_days']} days vs "
        f"{a.signals_expected:.2f} expected (P = {a.notice_p:.1e}); reports alone would make "
        "a notice; the committee decides whether to escalate"
    )
