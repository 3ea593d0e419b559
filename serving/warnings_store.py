"""Persistence of risk warnings and their lifecycle transitions (SQLAlchemy Core).

Two tables on :data:`serving.db.metadata`, in the same database as the audit log:

- ``warnings``: one row per warning (subject, level, status, publication type, scope, matters,
  measures, the assessment it was raised on, times);
- ``warning_transitions``: one row per lifecycle step, who, when, why, level before and after,
  and the effect evaluation when a lift rests on one.

State changes are guarded: the UPDATE names the status it expects, so two committee members
acting at once cannot both move the same warning (the loser gets :class:`InvalidTransition`).
"""

from __future__ import annotations

import builtins
import csv
import io
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from policy.warnings import (
    LEVELS,
    OPEN_STATUSES,
    InspectionMeasure,
    InvalidTransition,
    Subject,
    as_utc,
    assess,
    build_warning,
    fresh_evidence,
    inspection_measures,
    is_report_driven,
    load_warning_config,
    measures_for_level,
    next_state,
    notice_tests,
    propose,
    retitle,
    review_notice,
)
from serving.csv_safe import safe_cell
from serving.db import UTCDateTime, metadata, utcnow

warnings_table = sa.Table(
    "warnings",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("subject_kind", sa.String(20), nullable=False),
    sa.Column("subject_key", sa.String(120), nullable=False),
    sa.Column("subject_label", sa.String(200), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("publication_type", sa.String(8), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("matters", sa.Text, nullable=False),
    sa.Column("hazard", sa.String(20), nullable=True),
    sa.Column("scope", sa.JSON, nullable=False),
    sa.Column("measures", sa.JSON, nullable=False),
    sa.Column("assessment", sa.JSON, nullable=False),
    sa.Column("as_of", UTCDateTime(), nullable=False),
    sa.Column("proposed_at", UTCDateTime(), nullable=False),
    sa.Column("proposed_by", sa.String(64), nullable=False),
    sa.Column("activated_at", UTCDateTime(), nullable=True),
    sa.Column("lifted_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_warnings_status", "status"),
    sa.Index("ix_warnings_subject", "subject_kind", "subject_key"),
)

transitions_table = sa.Table(
    "warning_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("warning_id", sa.String(40), sa.ForeignKey("warnings.id"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_status", sa.String(16), nullable=True),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("from_level", sa.Integer, nullable=True),
    sa.Column("to_level", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("evaluation", sa.JSON, nullable=True),
    sa.Index("ix_warning_transitions_warning", "warning_id"),
)

EXPORT_FIELDS: tuple[str, ...] = (
    "id",
    "status",
    "level",
    "level_name",
    "colour",
    "publication_type",
    "title",
    "subject_kind",
    "subject_key",
    "subject_label",
    "hazard",
    "matters",
    "measures",
    "scope_declarations",
    "scope_ports",
    "scope_enterprises",
    "scope_value_usd",
    "window_start",
    "as_of",
    "start_time",
    "lifted_at",
    "inspected",
    "nonconforming",
    "baseline_rate",
    "lower_bound",
    "likelihood",
    "severity",
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _row_to_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    numeral, name_zh, colour = LEVELS[int(d["level"])]
    d["level_name"] = f"{numeral}级 {name_zh}"
    d["level_numeral"] = numeral
    d["colour"] = colour
    for key in ("as_of", "proposed_at", "activated_at", "lifted_at", "updated_at"):
        d[key] = _iso(d[key])
    return d


class WarningStore:
    """Warnings and transitions in one SQLAlchemy database.

    Parameters
    ----------
    engine
        The serving engine (``serving.db.make_engine``).
    config
        Warning configuration (``policy.warnings.load_warning_config``); measures of a level
        come from it when a warning is escalated or de-escalated.
    """

    def __init__(self, engine: Engine, config: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.config = config or load_warning_config()
        self._version = 0

    @property
    def version(self) -> int:
        """Bumped by every change made through this object (cache invalidation)."""
        return self._version

    # ---------------------------------------------------------------- reads
    def _with_confirmation(
        self, conn: Connection, rows: builtins.list[dict[str, Any]]
    ) -> builtins.list[dict[str, Any]]:
        """Set ``confirmed_at`` on early notices that results confirmed (the review's own
        ``as_of``), so ``policy.warnings.is_report_driven`` reads a stored record as the
        replay's in-memory one."""
        ids = [w["id"] for w in rows if (w.get("assessment") or {}).get("report_driven")]
        if not ids:
            return rows
        t = transitions_table.c
        q = sa.select(t.warning_id, t.at, t.evaluation).where(
            t.action == "confirm", t.warning_id.in_(ids)
        )
        when = {wid: (ev or {}).get("as_of") or _iso(at) for wid, at, ev in conn.execute(q)}
        for w in rows:
            if w["id"] in when:
                w["confirmed_at"] = when[w["id"]]
        return rows

    def get(self, warning_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(warnings_table).where(warnings_table.c.id == warning_id)
            ).first()
            if row is None:
                return None
            return self._with_confirmation(conn, [_row_to_dict(row)])[0]

    def list(
        self, status: str | None = None, level: int | None = None, limit: int = 1000
    ) -> builtins.list[dict[str, Any]]:
        """Warnings, most severe first, newest first within a level."""
        q = sa.select(warnings_table)
        if status:
            q = q.where(warnings_table.c.status == status)
        if level:
            q = q.where(warnings_table.c.level == level)
        q = q.order_by(
            warnings_table.c.level, warnings_table.c.as_of.desc(), warnings_table.c.id
        ).limit(limit)
        with self.engine.connect() as conn:
            return self._with_confirmation(conn, [_row_to_dict(r) for r in conn.execute(q)])

    def transitions(self, warning_id: str) -> builtins.list[dict[str, Any]]:
        q = (
            sa.select(transitions_table)
            .where(transitions_table.c.warning_id == warning_id)
            .order_by(transitions_table.c.id)
        )
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        for r in rows:
            r["at"] = _iso(r["at"])
        return rows

    def open_subjects(self) -> set[tuple[str, str]]:
        """(kind, key) of warnings still proposed, approved or active."""
        q = sa.select(warnings_table.c.subject_kind, warnings_table.c.subject_key).where(
            warnings_table.c.status.in_(("proposed", "approved", "active"))
        )
        with self.engine.connect() as conn:
            return {(k, v) for k, v in conn.execute(q)}

    def recently_closed(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(kind, key) -> level, time and whether it lapsed, of the latest lifted, rejected or
        lapsed warning, so that ``propose`` applies its cool-down (a lifted or rejected
        subject returns only at a worse level; a lapsed notice has none)."""
        t = warnings_table.c
        q = sa.select(
            t.subject_kind, t.subject_key, t.level, t.status, t.lifted_at, t.updated_at
        ).where(t.status.in_(("lifted", "rejected", "lapsed")))
        closed: dict[tuple[str, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for kind, key, level, status, lifted_at, updated_at in conn.execute(q):
                at = lifted_at or updated_at
                prev = closed.get((kind, key))
                if prev is None or at > prev["closed_at"]:
                    closed[(kind, key)] = {
                        "level": int(level),
                        "closed_at": at,
                        "lapsed": status == "lapsed",
                    }
        return closed

    def active_measures(self) -> builtins.list[InspectionMeasure]:
        """Inspection measures of the active warnings (for ``serving.decisions.decide``)."""
        return inspection_measures(self.list(status="active"))

    # ---------------------------------------------------------------- writes
    def add(self, records: Sequence[dict[str, Any]], actor: str) -> builtins.list[str]:
        """Store proposed warnings (from ``policy.warnings.propose`` or ``build_warning``).

        A record whose id already exists is skipped (re-running ``propose`` for the same day
        changes nothing). Returns the ids stored.
        """
        now = utcnow()
        stored: builtins.list[str] = []
        with self.engine.begin() as conn:
            for r in records:
                exists = conn.execute(
                    sa.select(warnings_table.c.id).where(warnings_table.c.id == r["id"])
                ).first()
                if exists:
                    continue
                conn.execute(
                    warnings_table.insert().values(
                        id=r["id"],
                        subject_kind=r["subject_kind"],
                        subject_key=r["subject_key"],
                        subject_label=r["subject_label"],
                        level=int(r["level"]),
                        status="proposed",
                        publication_type=r["publication_type"],
                        title=r["title"],
                        matters=r["matters"],
                        hazard=r.get("hazard"),
                        scope=r["scope"],
                        measures=r["measures"],
                        assessment=r["assessment"],
                        as_of=datetime.fromisoformat(r["as_of"]),
                        proposed_at=now,
                        proposed_by=actor,
                        updated_at=now,
                    )
                )
                self._log(conn, r["id"], "propose", None, "proposed", None, int(r["level"]),
                          actor, now, r.get("reason"), None)  # fmt: skip
                stored.append(r["id"])
        self._version += 1
        return stored

    def pending_notices(self) -> builtins.list[dict[str, Any]]:
        """Open report-driven early notices that results have not confirmed yet."""
        return [w for w in self.list() if w["status"] in OPEN_STATUSES and is_report_driven(w)]

    def _last_fresh_evidence(self) -> dict[str, Any]:
        """warning id -> ``as_of`` of its latest fresh-evidence record."""
        t = transitions_table.c
        q = sa.select(t.warning_id, t.evaluation).where(t.action == "fresh-evidence")
        last: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for wid, ev in conn.execute(q):
                at = (ev or {}).get("as_of")
                if at is not None and (wid not in last or at > last[wid]):
                    last[wid] = at
        return last

    def review_notices(
        self, tables: dict[str, Any], as_of: Any, actor: str = "notice-review"
    ) -> builtins.list[dict[str, Any]]:
        """Review the open warnings at ``as_of``: confirm (and, when results show a more severe
        level, raise) the pending early notices that results now support, lapse those whose
        review period has passed (``policy.warnings.review_notice``), and record fresh reports
        on any open warning for the committee (``policy.warnings.fresh_evidence``). Returns the
        warnings changed."""
        open_now = [w for w in self.list() if w["status"] in OPEN_STATUSES]
        if not open_now:
            return []
        pending = {w["id"] for w in self.pending_notices()}
        subjects = [Subject.parse(w["subject_kind"], w["subject_key"]) for w in open_now]
        fresh = {
            (a.subject.kind, a.subject.key_str): a
            for a in assess(tables, as_of, self.config, subjects=subjects)
        }
        tests = notice_tests(
            tables,
            [
                (w["id"], Subject.parse(w["subject_kind"], w["subject_key"]), w["as_of"])
                for w in open_now
                if w["id"] in pending
            ],  # fmt: skip
            as_of,
            self.config,
        )
        fdr = float(self.config["early_notice"]["confirm_fdr"])
        last = self._last_fresh_evidence()
        changed = []
        for w in open_now:
            now = fresh.get((w["subject_kind"], w["subject_key"]))
            test = tests.get(w["id"])
            decision = (
                review_notice(w, now, as_of, self.config, test) if w["id"] in pending else None
            )
            if decision is not None:
                action, level = decision
                reason = (
                    "results confirm the report-driven notice"
                    if action == "confirm"
                    else "review period passed without results confirming the notice"
                )
                evaluation = None
                if test is not None:
                    reason = f"{reason}: {test.describe(fdr)}"
                    evaluation = {"as_of": as_utc(as_of).isoformat(), **test.to_dict()}
                changed.append(
                    self.apply(w["id"], action, actor, reason, evaluation, new_level=level)
                )
                if action == "lapse":
                    continue
            why = fresh_evidence(w, now, as_of, self.config, last.get(w["id"]))
            if why is not None and now is not None:
                evidence = {
                    "as_of": as_utc(as_of).isoformat(),
                    "signals": now.signals,
                    "signal_sources": now.signal_sources,
                    "signals_expected": now.signals_expected,
                    "notice_p": now.notice_p,
                }
                changed.append(self.apply(w["id"], "fresh-evidence", actor, why, evidence))
        return changed

    def propose(
        self,
        tables: dict[str, Any],
        as_of: Any,
        actor: str,
        scores: Any = None,
        notices_only: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        """Review the pending early notices, assess every subject at ``as_of``
        (``policy.warnings.propose``), skip subjects with an open warning, store the new
        proposals and return them as stored.

        ``notices_only``: the nightly check of reports between the weekly runs: only subjects
        whose reports alone make an early notice are assessed (no review of pending notices;
        the weekly run does that)."""
        if not notices_only:
            self.review_notices(tables, as_of)
        records = propose(
            tables,
            as_of,
            self.config,
            scores,
            self.open_subjects(),
            recently_closed=self.recently_closed(),
            notices_only=notices_only,
        )
        ids = self.add(records, actor)
        return [w for i in ids if (w := self.get(i)) is not None]

    def propose_assessment(self, assessment: Any, actor: str, reason: str | None = None) -> str:
        """Store a warning proposed by hand from an assessment; returns its id."""
        record = build_warning(assessment, self.config, proposed_by=actor)
        record["reason"] = reason
        if not self.add([record], actor):
            raise InvalidTransition(f"warning {record['id']} already exists")
        return str(record["id"])

    @staticmethod
    def _log(
        conn: Connection,
        warning_id: str,
        action: str,
        from_status: str | None,
        to_status: str,
        from_level: int | None,
        to_level: int,
        actor: str,
        at: datetime,
        reason: str | None,
        evaluation: dict[str, Any] | None,
    ) -> None:
        conn.execute(
            transitions_table.insert().values(
                warning_id=warning_id,
                action=action,
                from_status=from_status,
                to_status=to_status,
                from_level=from_level,
                to_level=to_level,
                actor=actor,
                at=at,
                reason=reason,
                evaluation=evaluation,
            )
        )

    def apply(
        self,
        warning_id: str,
        action: str,
        actor: str,
        reason: str | None = None,
        evaluation: dict[str, Any] | None = None,
        new_level: int | None = None,
    ) -> dict[str, Any]:
        """Apply one lifecycle action; returns the updated warning.

        Raises
        ------
        KeyError
            No warning with that id.
        InvalidTransition
            The action is not allowed from the current state, or another request moved the
            warning first.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            self._apply(conn, warning_id, action, actor, reason, evaluation, now,
                        new_level=new_level)  # fmt: skip
        self._version += 1
        out = self.get(warning_id)
        assert out is not None
        return out

    def approve(
        self,
        warning_id: str,
        actor: str,
        reason: str | None = None,
        start_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Approve and put in force at once (two transitions in one database transaction).

        ``start_at`` is the warning's start time (default: now); the effect evaluation counts
        declarations from it. Replays of past data (the benchmark) set it to the proposal day.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            self._apply(conn, warning_id, "approve", actor, reason, None, now)
            self._apply(conn, warning_id, "activate", actor, reason, None, now, start_at)
        self._version += 1
        out = self.get(warning_id)
        assert out is not None
        return out

    def _apply(
        self,
        conn: Connection,
        warning_id: str,
        action: str,
        actor: str,
        reason: str | None,
        evaluation: dict[str, Any] | None,
        now: datetime,
        start_at: datetime | None = None,
        new_level: int | None = None,
    ) -> None:
        row = conn.execute(
            sa.select(
                warnings_table.c.status,
                warnings_table.c.level,
                warnings_table.c.subject_kind,
                warnings_table.c.title,
            ).where(warnings_table.c.id == warning_id)
        ).first()
        if row is None:
            raise KeyError(warning_id)
        status, level, kind, title = row
        to_status, to_level = next_state(status, int(level), action, reason, evaluation,
                                         new_level)  # fmt: skip
        values: dict[str, Any] = {"status": to_status, "level": to_level, "updated_at": now}
        if to_level != level:
            values["measures"] = measures_for_level(to_level, kind, self.config)
            pub = self.config["publication"][to_level]
            values["publication_type"] = pub
            values["title"] = retitle(title, to_level)
        if action == "activate":
            values["activated_at"] = start_at or now
        if action == "lift":
            values["lifted_at"] = now
        result = conn.execute(
            warnings_table.update()
            .where(
                warnings_table.c.id == warning_id,
                warnings_table.c.status == status,
                warnings_table.c.level == level,
            )  # fmt: skip
            .values(**values)
        )
        if result.rowcount != 1:
            raise InvalidTransition(f"warning {warning_id} changed meanwhile; reload it")
        self._log(conn, warning_id, action, status, to_status, int(level), to_level, actor, now,
                  reason, evaluation)  # fmt: skip


class MeasureCache:
    """The measure provider for ``serving.decisions``: active measures, re-read at most every
    ``ttl_seconds`` (immediately after a change made through the same store in this process).

    Other worker processes see an approval within ``ttl_seconds``.
    """

    def __init__(self, store: WarningStore, ttl_seconds: float = 2.0) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._loaded_at = -1e18
        self._version = -1
        self._measures: list[InspectionMeasure] = []

    def _fresh(self) -> bool:
        return (
            time.monotonic() - self._loaded_at < self.ttl_seconds
            and self._version == self.store.version
        )

    def __call__(self) -> list[InspectionMeasure]:
        if self._fresh():
            return self._measures
        changed_here = self._version != self.store.version
        # On expiry one caller re-reads while the others keep the list of a moment ago (it is
        # at most ttl_seconds old anyway): no herd of identical queries. After a change made
        # in this process every caller waits for the new list, so an approval applies at once.
        if not self._lock.acquire(blocking=changed_here or self._loaded_at < 0):
            return self._measures
        try:
            if not self._fresh():  # another caller may have re-read while this one waited
                version = self.store.version
                measures = self.store.active_measures()
                self._measures, self._loaded_at = measures, time.monotonic()
                self._version = version
        finally:
            self._lock.release()
        return self._measures


def export_rows(warnings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flatten stored warnings to the documented export schema (``EXPORT_FIELDS``)."""
    rows = []
    for w in warnings:
        a = w.get("assessment") or {}
        scope = w.get("scope") or {}
        rows.append(
            {
                "id": w["id"],
                "status": w["status"],
                "level": int(w["level"]),
                "level_name": w["level_name"],
                "colour": w["colour"],
                "publication_type": w["publication_type"],
                "title": w["title"],
                "subject_kind": w["subject_kind"],
                "subject_key": w["subject_key"],
                "subject_label": w["subject_label"],
                "hazard": w.get("hazard"),
                "matters": w["matters"],
                "measures": ";".join(
                    m["type"] + (f":{m['mode']}@{m['rate']}" if "mode" in m else "")
                    for m in w["measures"]
                ),
                "scope_declarations": scope.get("declarations"),
                "scope_ports": scope.get("ports"),
                "scope_enterprises": scope.get("enterprises"),
                "scope_value_usd": scope.get("value_usd"),
                "window_start": scope.get("window_start"),
                "as_of": w["as_of"],
                "start_time": w.get("activated_at"),
                "lifted_at": w.get("lifted_at"),
                "inspected": a.get("inspected"),
                "nonconforming": a.get("nonconforming"),
                "baseline_rate": a.get("baseline"),
                "lower_bound": a.get("lower_bound"),
                "likelihood": a.get("likelihood"),
                "severity": a.get("severity"),
            }
        )
    return rows


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The export rows as CSV (header = ``EXPORT_FIELDS``; empty cell for null; text that
    starts like a formula prefixed with ``'``, see :mod:`serving.csv_safe`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EXPORT_FIELDS), lineterminator="\n")
    writer.writeheader()
    for r in rows:  # safe_cell: no cell a spreadsheet would run as a formula
        writer.writerow({k: "" if r.get(k) is None else safe_cell(r[k]) for k in EXPORT_FIELDS})
    return buf.getvalue()
