"""Committee pages of the annual monitoring plan: the plans, one plan's lines with their
reasoning, quota edits, approval (who and when, audited), and the landing page's execution panel.

Routes are thin: they validate, call ``serving.plan_store`` and map its errors (unknown plan 404,
refused action 409, bad quota 422). :func:`install` creates the tables and puts the
:class:`~serving.plan_store.QuotaShares` hook on ``app.state.monitoring_quotas`` (read by the
``Scorer`` the app builds, so the approved plan drives the random monitoring draw).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from policy.plan import PlanError
from serving.committee.render import render, templates
from serving.committee.state import app_settings
from serving.plan_execution import execution
from serving.plan_store import (
    PlanNotFound,
    PlanStateError,
    QuotaShares,
    approve,
    edit_quotas,
    ensure_schema,
    events,
    get_plan,
    list_plans,
)
from serving.request_guard import validation_error
from serving.routes.warnings import get_tables
from serving.sessions import User, check_csrf

router = APIRouter(prefix="/committee/plans", include_in_schema=False)
EXECUTION_TTL_SECONDS = 30.0
MAX_EDITS = 5000


def install(app: FastAPI) -> None:
    """Tables, the quota hook and the landing panel's data function (run in the lifespan)."""
    engine = app.state.engine
    ensure_schema(engine)
    settings = app.state.settings
    app.state.monitoring_quotas = QuotaShares(engine, settings.timezone)
    templates.env.globals["plan_execution"] = execution_panel


def _engine(request: Request) -> Any:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise HTTPException(503, "database not ready")
    return engine


def execution_panel(request: Request) -> dict[str, Any] | None:
    """The landing page's execution data, cached on the app for a few seconds."""
    state = request.app.state
    if getattr(state, "monitoring_quotas", None) is None:  # this app did not install plans
        return None
    cached = getattr(state, "plan_execution_cache", None)
    now = time.monotonic()
    if cached is not None and now - cached[0] < EXECUTION_TTL_SECONDS:
        return cached[1]
    try:
        tables = get_tables(request)
    except HTTPException:
        tables = None
    data = execution(_engine(request), tables, now=datetime.now(UTC),
                     timezone=app_settings(request.app).timezone)  # fmt: skip
    if data is not None:
        data["rows"] = sorted(data["rows"], key=lambda r: (-r["quota"], r["group_id"]))
    state.plan_execution_cache = (now, data)
    return data


def _forget(request: Request) -> None:
    request.app.state.plan_execution_cache = None
    quotas = getattr(request.app.state, "monitoring_quotas", None)
    if quotas is not None:
        quotas.invalidate()


@router.get("", response_class=HTMLResponse)
def plans(request: Request, user: User) -> Response:
    return render(request, "plans.html", {"user": user, "plans": list_plans(_engine(request))})


@router.get("/{plan_id}", response_class=HTMLResponse)
def plan_page(request: Request, plan_id: str, user: User, q: str = "") -> Response:
    try:
        plan, lines = get_plan(_engine(request), plan_id)
    except PlanNotFound as exc:
        raise HTTPException(404, f"no plan {plan_id}") from exc
    q = q.strip()[:64]
    shown = lines[lines["group_id"].str.contains(q, regex=False)] if q else lines
    return render(request, "plan.html", {
        "user": user, "plan": plan, "lines": shown.to_dict("records"), "q": q,
        "total_lines": len(lines), "events": events(_engine(request), plan_id),
        "expected": float(lines["expected_nonconforming"].sum()),
        "samples": int(lines["quota"].sum()),
        "edited": request.query_params.get("edited"),
    })  # fmt: skip


@router.post("/{plan_id}/quotas")
async def plan_quotas(request: Request, plan_id: str, user: User) -> Response:
    """Edit quotas: form fields ``quota:<group_id>`` with the new value (blank = unchanged)."""
    form = await request.form()
    check_csrf(user, str(form.get("csrf", "")))
    quotas: dict[str, int] = {}
    for name, value in form.multi_items():
        if not name.startswith("quota:") or not isinstance(value, str) or not value.strip():
            continue
        group = name[len("quota:") :]
        try:
            quotas[group] = int(value)
        except ValueError as exc:
            raise validation_error(("body", name), "quota must be a whole number", value) from exc
        if quotas[group] < 0:
            raise validation_error(("body", name), "quota must be >= 0", value)
        if len(quotas) > MAX_EDITS:
            raise validation_error(("body",), f"at most {MAX_EDITS} quotas per edit", None)
    try:
        changed = edit_quotas(_engine(request), plan_id, quotas, user.actor)
    except PlanNotFound as exc:
        raise HTTPException(404, f"no plan {plan_id}") from exc
    except PlanStateError as exc:
        raise HTTPException(409, str(exc)) from exc
    except PlanError as exc:
        raise validation_error(("body",), str(exc), None) from exc
    _forget(request)
    return RedirectResponse(f"/committee/plans/{plan_id}?edited={changed}", status_code=303)


@router.post("/{plan_id}/approve")
def plan_approve(
    request: Request, plan_id: str, user: User, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(user, csrf)
    try:
        approve(_engine(request), plan_id, user.actor)
    except PlanNotFound as exc:
        raise HTTPException(404, f"no plan {plan_id}") from exc
    except PlanStateError as exc:
        raise HTTPException(409, str(exc)) from exc
    _forget(request)
    return RedirectResponse(f"/committee/plans/{plan_id}", status_code=303)
