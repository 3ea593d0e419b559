"""The lifecycle of a warning: statuses, the state machine and the effect evaluation that a
lift rests on. Persistence lives in ``serving/warnings_store.py``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from policy.warnings.assessment import as_utc
from policy.warnings.config import load_warning_config
from policy.warnings.subjects import Subject

STATUSES: tuple[str, ...] = ("proposed", "approved", "rejected", "active", "lifted")
OPEN_STATUSES: tuple[str, ...] = ("proposed", "approved", "active")
ACTIONS: tuple[str, ...] = ("approve", "reject", "activate", "escalate", "de-escalate", "lift")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _inspected_under_measure(
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
    n, k = _inspected_under_measure(subject, tables, start, end)
    activated = warning.get("activated_at")
    if n < min_n and activated and as_utc(activated) < start:
        start = as_utc(activated)
        n, k = _inspected_under_measure(subject, tables, start, end)
    rate = k / n if n else None
    return EffectEvaluation(
        period_start=start.isoformat(),
        period_end=end.isoformat(),
        inspected=n,
        nonconforming=k,
        rate=rate,
        threshold=float(threshold),
        min_inspected=min_n,
        passed=bool(rate is not None and n >= min_n and rate <= threshold),
    )


def next_state(
    status: str,
    level: int,
    action: str,
    reason: str | None = None,
    evaluation: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """The state after a lifecycle action, or :class:`InvalidTransition`.

    proposed -approve-> approved -activate-> active; proposed -reject-> rejected;
    active -escalate-> active at a more severe level (Ⅳ→Ⅲ→Ⅱ→Ⅰ); active -de-escalate-> active
    at a less severe level; active -lift-> lifted, only with a passing effect evaluation or a
    recorded reason. Rejected and lifted are final.
    """
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
