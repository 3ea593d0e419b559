"""Monitoring plans in the serving database: proposed, edited, approved (who and when, audited),
and the per-group draw rates the approved plan gives serving.

Tables: ``monitoring_plans`` (one row per plan), ``monitoring_plan_lines`` (one per group),
``monitoring_plan_events`` (every create, edit and approval with its actor and time).
:class:`QuotaShares` is the hook of ``serving.scoring.Scorer``: a dict lookup per declaration,
refreshed from the database at most every ``ttl_seconds``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from policy.plan import (
    LINE_COLUMNS,
    Plan,
    PlanConfig,
    PlanError,
    group_of,
    quota_rate,
    reevaluate,
    year_elapsed,
)
from serving.audit import score_audit
from serving.db import UTCDateTime, create_schema, metadata, utcnow

plans_table = sa.Table(
    "monitoring_plans",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("year", sa.Integer, nullable=False),
    sa.Column("samples", sa.Integer, nullable=False),
    sa.Column("product_level", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # proposed, approved, superseded
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("approved_at", UTCDateTime(), nullable=True),
    sa.Column("approved_by", sa.String(64), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_monitoring_plans_year_status", "year", "status"),
)

plan_lines_table = sa.Table(
    "monitoring_plan_lines",
    metadata,
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("monitoring_plans.id"), primary_key=True),
    sa.Column("group_id", sa.String(120), primary_key=True),
    sa.Column("proposed_quota", sa.Integer, nullable=False),
    sa.Column("quota", sa.Integer, nullable=False),
    sa.Column("volume", sa.Float, nullable=False),
    sa.Column("line", sa.JSON, nullable=False),  # every LINE_COLUMNS value as proposed
)

plan_events_table = sa.Table(
    "monitoring_plan_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("monitoring_plans.id"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # create, edit, approve, supersede
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Index("ix_monitoring_plan_events_plan", "plan_id"),
)

PLAN_TABLES = (plans_table, plan_lines_table, plan_events_table)


class PlanNotFound(LookupError):
    """No plan with that id."""


class PlanStateError(PlanError):
    """The plan is not in a state that allows the action (e.g. editing an approved plan)."""


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the newest migration (revision ``0002`` adds the plan tables)."""
    create_schema(engine)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN: JSON has none
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def save_plan(engine: Engine, plan: Plan, actor: str) -> str:
    """Store a proposed plan and its lines; returns its id (``P<year>-<hex>``)."""
    plan_id = f"P{plan.year}-{uuid.uuid4().hex[:8]}"
    now = utcnow()
    lines = plan.lines
    rows = [
        {
            "plan_id": plan_id,
            "group_id": r["group_id"],
            "proposed_quota": int(r["quota"]),
            "quota": int(r["quota"]),
            "volume": float(r["volume"]),
            "line": {k: _jsonable(r[k]) for k in LINE_COLUMNS},
        }
        for r in lines.to_dict("records")
    ]
    ports: dict[str, int] = {}
    if not plan.ports.empty:
        by_port = plan.ports.groupby("port_code")["quota"].sum()
        ports = {str(k): int(v) for k, v in by_port.items()}
    summary = {**plan.summary, "ports": ports}
    with engine.begin() as conn:
        conn.execute(
            plans_table.insert().values(
                id=plan_id, year=plan.year, samples=plan.samples,
                product_level=plan.config.product_level, status="proposed",
                config=plan.config.to_dict(), summary=json.loads(json.dumps(summary)),
                created_at=now, created_by=actor, updated_at=now,
            )
        )  # fmt: skip
        conn.execute(plan_lines_table.insert(), rows)
        conn.execute(
            plan_events_table.insert().values(
                plan_id=plan_id, action="create", actor=actor, at=now,
                detail={"samples": plan.samples, "groups": len(rows)},
            )
        )  # fmt: skip
    return plan_id


def _plan_dict(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    for k in ("created_at", "approved_at", "updated_at"):
        d[k] = d[k].isoformat() if d[k] is not None else None
    return d


def list_plans(engine: Engine) -> list[dict[str, Any]]:
    """Every plan, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(plans_table.select().order_by(plans_table.c.created_at.desc()))
        return [_plan_dict(r) for r in rows]


def get_plan(engine: Engine, plan_id: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """A plan and its lines (``LINE_COLUMNS`` with the current ``quota`` and
    ``proposed_quota``), sorted by quota then group."""
    with engine.connect() as conn:
        row = conn.execute(plans_table.select().where(plans_table.c.id == plan_id)).first()
        if row is None:
            raise PlanNotFound(plan_id)
        lines = conn.execute(
            sa.select(plan_lines_table.c.line, plan_lines_table.c.quota,
                      plan_lines_table.c.proposed_quota)
            .where(plan_lines_table.c.plan_id == plan_id)
        ).all()  # fmt: skip
    plan = _plan_dict(row)
    frame = pd.DataFrame([{**line, "proposed_quota": pq, "quota": q} for line, q, pq in lines])
    if frame.empty:
        return plan, pd.DataFrame(columns=[*LINE_COLUMNS, "proposed_quota"])
    for col in ("model_rate", "expected_ci_low", "expected_ci_high", "expected_ci_width"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    frame = reevaluate(frame, {}, PlanConfig.from_dict(plan["config"]))
    frame = frame.sort_values(["quota", "group_id"], ascending=[False, True], kind="stable")
    return plan, frame.reset_index(drop=True)


def events(engine: Engine, plan_id: str) -> list[dict[str, Any]]:
    """The plan's audit trail, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            plan_events_table.select()
            .where(plan_events_table.c.plan_id == plan_id)
            .order_by(plan_events_table.c.id)
        )
        return [{**dict(r._mapping), "at": r.at.isoformat()} for r in rows]


def edit_quotas(engine: Engine, plan_id: str, quotas: Mapping[str, int], actor: str) -> int:
    """Set the quotas of some groups of a proposed plan; returns how many changed."""
    plan, lines = get_plan(engine, plan_id)
    if plan["status"] != "proposed":
        raise PlanStateError(f"plan {plan_id} is {plan['status']}: only a proposal is edited")
    config = PlanConfig.from_dict(plan["config"])
    reevaluate(lines, quotas, config)  # validates groups and values
    current = dict(zip(lines["group_id"], lines["quota"], strict=True))
    changes = {g: int(q) for g, q in quotas.items() if int(current[g]) != int(q)}
    if not changes:
        return 0
    now = utcnow()
    with engine.begin() as conn:
        for gid, q in changes.items():
            conn.execute(
                plan_lines_table.update()
                .where(plan_lines_table.c.plan_id == plan_id, plan_lines_table.c.group_id == gid)
                .values(quota=q)
            )
        total = conn.execute(
            sa.select(sa.func.sum(plan_lines_table.c.quota)).where(
                plan_lines_table.c.plan_id == plan_id
            )
        ).scalar_one()
        conn.execute(
            plans_table.update()
            .where(plans_table.c.id == plan_id)
            .values(samples=int(total), updated_at=now)
        )
        conn.execute(
            plan_events_table.insert().values(
                plan_id=plan_id, action="edit", actor=actor, at=now,
                detail={"quotas": {g: [int(current[g]), q] for g, q in changes.items()},
                        "samples": int(total)},
            )
        )  # fmt: skip
    return len(changes)


def approve(engine: Engine, plan_id: str, actor: str) -> None:
    """Approve a proposed plan; an approved plan of the same year is superseded."""
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(plans_table.select().where(plans_table.c.id == plan_id)).first()
        if row is None:
            raise PlanNotFound(plan_id)
        if row.status != "proposed":
            raise PlanStateError(f"plan {plan_id} is {row.status}: only a proposal is approved")
        older = conn.execute(
            sa.select(plans_table.c.id).where(
                plans_table.c.year == row.year, plans_table.c.status == "approved"
            )
        ).scalars().all()  # fmt: skip
        for old in older:
            conn.execute(plans_table.update().where(plans_table.c.id == old)
                         .values(status="superseded", updated_at=now))  # fmt: skip
            conn.execute(
                plan_events_table.insert().values(
                    plan_id=old, action="supersede", actor=actor, at=now, detail={"by": plan_id}
                )
            )
        conn.execute(
            plans_table.update()
            .where(plans_table.c.id == plan_id)
            .values(status="approved", approved_at=now, approved_by=actor, updated_at=now)
        )
        conn.execute(plan_events_table.insert().values(
            plan_id=plan_id, action="approve", actor=actor, at=now,
            detail={"samples": int(row.samples), "superseded": list(older)}))  # fmt: skip


def approved_plan(engine: Engine, year: int) -> str | None:
    """The id of the approved plan of ``year`` (None when there is none)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(plans_table.c.id).where(
                plans_table.c.year == year, plans_table.c.status == "approved"
            )
        ).scalar_one_or_none()


def count_draws(
    engine: Engine, level: str, since: datetime, after_id: int = 0
) -> tuple[dict[str, int], int]:
    """Monitoring draws per plan group from the audit log: audit rows with
    ``monitoring_selected`` created at or after ``since`` with an id above ``after_id``.

    Returns the counts and the highest audit id read (for the next incremental call).
    """
    counts: dict[str, int] = {}
    last = after_id
    query = (
        sa.select(score_audit.c.id, score_audit.c.declaration_json)
        .where(
            score_audit.c.monitoring_selected.is_(True),
            score_audit.c.created_at >= since,
            score_audit.c.id > after_id,
        )
        .order_by(score_audit.c.id)
    )
    with engine.connect() as conn:
        for audit_id, text in conn.execute(query):
            last = max(last, int(audit_id))
            if not text:
                continue
            d = json.loads(text)
            try:
                gid = group_of(d, level)  # type: ignore[arg-type]
            except KeyError:
                continue
            counts[gid] = counts.get(gid, 0) + 1
    return counts, last


class QuotaShares:
    """The monitoring share per declaration from the approved plan of the current year.

    ``share(declaration, default)`` is a dict lookup; the rates (``policy.plan.quota_rate`` of
    each group's quota, its draws so far and the year elapsed) are recomputed at most every
    ``ttl_seconds`` from the database, the draws counted incrementally from the audit log.
    Without an approved plan for the year, ``default`` (the bundle policy's global share).
    A group the plan does not name (new trade) is drawn at the plan's floor rate.
    """

    def __init__(self, engine: Engine, timezone: str, ttl_seconds: float = 30.0) -> None:
        self.engine = engine
        self.timezone = timezone
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._loaded_at = -1e18
        self._rates: dict[str, float] | None = None
        self._unplanned = 0.0
        self._level = "chapter"
        self._plan_id: str | None = None
        self._drawn: dict[str, int] = {}
        self._last_audit_id = 0
        self.last_error: str | None = None

    def invalidate(self) -> None:
        """Recompute on the next call (an approval in this process)."""
        self._loaded_at = -1e18

    def share(self, declaration: Mapping[str, Any], default: float) -> float:
        if time.monotonic() - self._loaded_at >= self.ttl_seconds:
            self.refresh()
        rates = self._rates
        if rates is None:
            return default
        return rates.get(group_of(declaration, self._level), self._unplanned)  # type: ignore[arg-type]

    def refresh(self, now: datetime | None = None) -> None:
        """Reload the plan in force and the draws; a failure keeps the previous rates."""
        if not self._lock.acquire(blocking=self._rates is None):
            return  # another thread refreshes; keep serving the current rates
        try:
            now = now or utcnow()
            year = pd.Timestamp(now).tz_convert(self.timezone).year
            plan_id = approved_plan(self.engine, year)
            if plan_id is None:
                self._rates, self._plan_id = None, None
                self._loaded_at = time.monotonic()
                return
            plan, lines = get_plan(self.engine, plan_id)
            level = plan["product_level"]
            start = pd.Timestamp(year=year, month=1, day=1, tz=self.timezone).tz_convert("UTC")
            if plan_id != self._plan_id:
                self._drawn, self._last_audit_id = {}, 0
            new, last = count_draws(self.engine, level, start.to_pydatetime(), self._last_audit_id)
            for g, c in new.items():
                self._drawn[g] = self._drawn.get(g, 0) + c
            self._last_audit_id = last
            cfg = PlanConfig.from_dict(plan["config"])
            elapsed = year_elapsed(now, year, self.timezone)
            self._rates = {
                g: quota_rate(q, self._drawn.get(g, 0), v, elapsed, cfg.max_sampling_rate)
                for g, q, v in zip(lines["group_id"], lines["quota"], lines["volume"], strict=True)
            }
            summary = plan["summary"] or {}
            volume = float(summary.get("volume") or lines["volume"].sum())
            self._unplanned = float(summary.get("floor_samples", 0)) / volume if volume else 0.0
            self._level, self._plan_id = level, plan_id
            self._loaded_at = time.monotonic()
            self.last_error = None
        except Exception as exc:  # keep the last rates; retry after the ttl
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._loaded_at = time.monotonic()
        finally:
            self._lock.release()

    @property
    def plan_id(self) -> str | None:
        return self._plan_id

    def drawn(self) -> dict[str, int]:
        return dict(self._drawn)
