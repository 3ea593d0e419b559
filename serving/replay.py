"""A lived-in office for the demo: the committee's past work replayed through its own code.

``guomen up`` calls :func:`replay_warnings` over the demo period, then
:func:`score_through_api`. Every step goes through the code a committee member or an inspector
uses: proposals from ``run_propose`` (the pages' and API's proposal service), approvals,
escalations and lifts from ``run_action`` (lifts only after a passing effect evaluation), and
declarations scored by ``POST /v1/score`` on the real app (``serving.app.create_app``, lifespan,
authentication and audit included). Nothing is written behind the services' backs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.progress import Progress, no_progress
from policy.warnings import InvalidTransition, evaluate_effect
from serving.routes.warnings import run_action, run_propose
from serving.warnings_store import WarningStore

log = logging.getLogger("guomen.serving.replay")

ACTOR = "demo committee (replay)"


@dataclass
class ReplayReport:
    """What the replay did."""

    steps: int = 0
    proposed: int = 0
    approved: int = 0
    escalated: int = 0
    lifted: int = 0
    awaiting: int = 0
    dates: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        return (
            f"{self.steps} committee meetings {self.dates[0] if self.dates else ''} – "
            f"{self.dates[-1] if self.dates else ''}: {self.proposed} proposed, "
            f"{self.approved} approved, {self.escalated} escalated, {self.lifted} lifted after "
            f"a passing effect evaluation, {self.awaiting} awaiting a decision"
        )


def replay_warnings(
    store: WarningStore,
    tables: dict[str, pd.DataFrame],
    *,
    weeks: int = 26,
    step_days: int = 14,
    awaiting: int = 2,
    progress: Progress | None = None,
) -> ReplayReport:
    """Replay the committee's fortnightly meetings over the last ``weeks`` weeks of data.

    At each meeting: warnings in force whose effect evaluation passes are lifted; new proposals
    are made; every proposal is approved at the meeting that made it or a later one (put in
    force from that meeting's day) except the ``awaiting`` most recent, which stay awaiting a
    decision for the first sign-in; the active warning with the most nonconforming results
    behind it is escalated once, half-way through. ``progress`` is told each meeting (counted).
    """
    say = progress or no_progress
    decl = tables["declarations"]["declared_at"]
    end = pd.Timestamp(decl.max())
    start = max(pd.Timestamp(decl.min()) + pd.Timedelta(days=200), end - pd.Timedelta(weeks=weeks))
    dates = list(pd.date_range(start, end, freq=f"{step_days}D"))
    report = ReplayReport(dates=[str(d.date()) for d in dates])
    escalate_at = len(dates) // 2
    pending: list[str] = []
    for i, as_of in enumerate(dates):
        say(f"meeting of {as_of.date()}", i, len(dates))
        at = as_of.isoformat()
        for w in store.list(status="active"):
            if evaluate_effect(w, tables, at, store.config).passed:
                run_action(store, w["id"], "lift", ACTOR, "effect evaluation passed", tables,
                           True, at)  # fmt: skip
                report.lifted += 1
        made = run_propose(store, tables, at, ACTOR)
        report.proposed += len(made)
        pending += [w["id"] for w in made]
        cut = max(0, len(pending) - awaiting)
        decide, pending = pending[:cut], pending[cut:]
        for warning_id in decide:
            try:
                run_action(store, warning_id, "approve", ACTOR,
                           "evidence reviewed at the meeting",
                           start_at=as_of.to_pydatetime())  # fmt: skip
            except InvalidTransition:  # e.g. an early notice the store let lapse meanwhile
                continue
            report.approved += 1
        if i >= escalate_at and not report.escalated:
            report.escalated += _escalate_strongest(store)
        report.steps += 1
    say("meetings replayed", len(dates), len(dates))
    report.awaiting = len(store.list(status="proposed"))
    return report


def _escalate_strongest(store: WarningStore) -> int:
    """Escalate the active warning with the most nonconforming results behind it, if one can go
    up a level; returns how many were escalated (0 or 1)."""
    active = [w for w in store.list(status="active") if int(w["level"]) > 1]
    if not active:
        return 0
    strongest = max(active, key=lambda w: int((w.get("assessment") or {}).get("nonconforming", 0)))
    try:
        run_action(store, strongest["id"], "escalate", ACTOR,
                   "further nonconforming results reported by the ports")  # fmt: skip
    except InvalidTransition as exc:
        log.warning("replay could not escalate %s: %s", strongest["id"], exc)
        return 0
    return 1


def demo_requests(tables: dict[str, pd.DataFrame], n: int, seed: int = 0,
                  now: datetime | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """``n`` new declarations in contract fields, declared over the last day up to ``now``: the
    trade of the store's last month (the same traders, goods and origins) with new ids."""
    now = now or datetime.now(UTC)
    decl = tables["declarations"]
    recent = decl[decl["declared_at"] > decl["declared_at"].max() - pd.Timedelta(days=30)]
    rng = np.random.default_rng(seed)
    picks = recent.iloc[rng.choice(len(recent), size=min(n, len(recent)), replace=False)]
    from serving.schemas import Declaration

    fields = sorted(set(Declaration.model_fields) - {"declaration_id", "declared_at",
                                                     "attributes", "declared_value_usd"})  # fmt: skip
    stamp = now.strftime("%Y%m%d")
    out = []
    for k, (_, row) in enumerate(picks.iterrows()):
        body: dict[str, Any] = {"declaration_id": f"DEMO-{stamp}-{k + 1:04d}"}
        for f in fields:
            if f in row.index and not _missing(row[f]):
                v = row[f]
                body[f] = v.item() if isinstance(v, np.generic) else _plain(v)
        at = now - timedelta(minutes=float(rng.uniform(1, 23 * 60)))
        body["declared_at"] = at.isoformat()
        out.append(body)
    return out


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, pd.Timestamp | datetime) else v


def _missing(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def score_through_api(client: Any, inspector_key: str,
                      requests: list[dict[str, Any]]) -> dict[str, int]:  # fmt: skip
    """Score ``requests`` one by one through ``POST /v1/score`` with ``client`` (an HTTP client
    of the real app); returns the count of each decision (a refusal counts as its status)."""
    counts: dict[str, int] = {}
    for body in requests:
        r = client.post("/v1/score", json=body, headers={"X-API-Key": inspector_key})
        key = str(r.json().get("decision")) if r.status_code == 200 else f"http {r.status_code}"
        if r.status_code != 200:
            log.warning("demo declaration %s refused: %s", body["declaration_id"], r.text[:300])
        counts[key] = counts.get(key, 0) + 1
    return counts


def open_office(settings: Any, inspector_key: str, *, declarations: int = 300,
                echo: Callable[[str], None] = print) -> None:  # fmt: skip
    """Score ``declarations`` new declarations through the API of the real app and build the
    committee's point-in-time explanations, so the first page views are quick."""
    from features.store import Store
    from serving.app import create_app
    from serving.committee.explaining import prepare_explanations

    tables = Store(settings.store_dir).tables()
    app = create_app(settings)
    from fastapi.testclient import TestClient

    # in process, lifespan included: the model, snapshot, audit and measures are the server's
    with TestClient(app) as client:
        counts = score_through_api(client, inspector_key, demo_requests(tables, declarations))
        echo("  scored through POST /v1/score: "
             + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))  # fmt: skip
        rows = prepare_explanations(app, tables)
        echo(f"  point-in-time explanations ready for {rows:,} store declarations")


def replay_office(settings: Any, echo: Callable[[str], None] = print) -> ReplayReport | None:
    """Replay the committee's meetings into the serving database unless it holds warnings."""
    from features.store import Store
    from serving.db import create_schema, make_engine

    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        store = WarningStore(engine)
        if store.list():
            echo("  the warnings database is not empty: no replay")
            return None
        report = replay_warnings(store, Store(settings.store_dir).tables())
        echo(f"  {report.to_text()}")
        return report
    finally:
        engine.dispose()
