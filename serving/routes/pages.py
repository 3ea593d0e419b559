"""Server-rendered committee pages: login, the office (landing), search, warnings, warning
detail, model card, declaration explanation (waterfall) and enterprise profile.

Routes only read the request, call :mod:`serving.committee` (queries, explanations, figures)
and render; every asset is local (``/committee/static``, :func:`install_pages`) and charts are
drawn on the server (SVG inline). Browsers cannot send ``X-API-Key``, so a committee member
signs in once with their API key; sessions, cookies and CSRF tokens live in
``serving.sessions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from policy.warnings import LEVELS, InvalidTransition, Subject, evaluate_effect
from policy.warnings import STATUSES as WARNING_STATUSES
from serving import dashboard
from serving.auth import KeyStore
from serving.committee import queries
from serving.committee.explaining import feature_rows, re_explanation, shap_reasons
from serving.committee.figures import budget_svgs, health_svgs, trend_svg
from serving.committee.render import error_page, install_error_pages, mount_static, render
from serving.committee.state import app_settings, current_scorer, memo
from serving.request_guard import validation_error
from serving.rescore.db import get_profile
from serving.routes.warnings import get_scores, get_store, get_tables, run_action, run_propose
from serving.sessions import (
    PAGE_ROLES,
    User,
    check_csrf,
    check_login_csrf,
    end_session,
    new_login_csrf,
    safe_next,
    set_login_csrf,
    start_session,
)

__all__ = ["error_page", "install_pages", "router"]

router = APIRouter(prefix="/committee", include_in_schema=False)

WARNING_ACTIONS = ("approve", "reject", "escalate", "de-escalate", "lift")


# ------------------------------------------------------------------------------ login


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None, error: str | None = None) -> Response:
    token = new_login_csrf()
    resp = render(request, "login.html", {"csrf": token, "next": safe_next(next),
                                          "error": error, "user": None})  # fmt: skip
    set_login_csrf(resp, token)
    return resp


@router.post("/login")
def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=500)] = "/committee",
) -> Response:
    check_login_csrf(request, csrf)
    keys = getattr(request.app.state, "keys", None) or KeyStore(get_store(request).engine)
    record = keys.authenticate(api_key.strip())
    if record is None or record.role not in PAGE_ROLES:
        return RedirectResponse("/committee/login?error=1", status_code=303)
    resp = RedirectResponse(safe_next(next), status_code=303)
    start_session(request, resp, record.key_id, record.role)
    return resp


@router.post("/logout")
def logout(request: Request, user: User, csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(user, csrf)
    resp = RedirectResponse("/committee/login", status_code=303)
    end_session(request, resp, user)
    return resp


# ------------------------------------------------------------------------------ pages


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def landing(request: Request, user: User) -> Response:
    """The committee's office: decisions waiting, warnings in force, today's scoring, the model
    and its health in production."""
    store = get_store(request)
    proposed, in_force = queries.warnings_by_state(store.list())
    settings = app_settings(request.app)
    days = dashboard.scored_days(store.engine, settings.timezone, datetime.now(UTC))
    scorer = current_scorer(request.app)
    model: dict[str, Any] | None = None
    health: list[dashboard.MonthHealth] = []
    health_svg = psi_svg = ""
    if scorer is not None:
        metrics = scorer.bundle.metrics or {}
        model = {
            "ref": scorer.ref,
            "created_at": scorer.bundle.created_at,
            "split": metrics.get("split", {}),
            "rows": queries.headline_rows(metrics, float(scorer.policy.budget)),
        }
        model["random_critical_defined"] = queries.random_critical_defined(model["rows"])
        tables = get_tables(request)
        pit = feature_rows(request.app, scorer, tables)
        health = memo(request.app, "health", (pit.version, scorer.ref.version, id(tables)),
                      lambda: dashboard.monthly_health(
                          pit.declared_at_ns, pit.probabilities(scorer), pit.ids,
                          tables.get("inspections"), metrics.get("split", {})))  # fmt: skip
        health_svg, psi_svg = health_svgs(health)
    return render(request, "landing.html", {
        "user": user, "proposed": proposed, "in_force": in_force, "levels": LEVELS, "days": days, "model": model,
        "health": health, "health_svg": health_svg, "psi_svg": psi_svg,
        "psi_act": dashboard.PSI_ACT, "psi_watch": dashboard.PSI_WATCH,
        "has_record": any(getattr(r, "path", "") == "/committee/warnings/record"
                          for r in request.app.router.routes),
    })  # fmt: skip


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, user: User, q: str = "") -> Response:
    """Declarations, enterprises and warning subjects matching ``q``."""
    q = q.strip()[:64]
    results: dict[str, Any] = {"declarations": [], "enterprises": [], "subjects": []}
    if q:
        store = get_store(request)
        results = queries.search(get_tables(request), store.engine, store.list(), q)
    return render(request, "search.html", {"user": user, "q": q, "results": results})


@router.get("/warnings", response_class=HTMLResponse)
def warnings_page(
    request: Request, user: User, status: str | None = None, level: int | None = None
) -> Response:
    store = get_store(request)
    status = status if status in WARNING_STATUSES else None
    level = level if level in LEVELS else None
    rows = store.list(status=status, level=level)
    counts = queries.warning_counts(store.list())
    today = pd.Timestamp.now(tz="UTC")
    try:
        default_day = queries.default_assessment_day(get_tables(request), today)
    except HTTPException:  # no ingested store yet: the form still works, with no default
        default_day = ""
    return render(request, "warnings.html", {"user": user, "warnings": rows, "counts": counts,
                  "status": status, "level": level, "default_day": default_day,
                  "today": str(today.date()),
                  "statuses": queries.WARNING_STATUS_ORDER})  # fmt: skip


@router.post("/propose")
def propose_page(
    request: Request,
    user: User,
    as_of: Annotated[str, Form(max_length=40)],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(user, csrf)
    try:
        pd.Timestamp(as_of)
    except ValueError as exc:
        raise validation_error(("body", "as_of"), str(exc), as_of) from exc
    made = run_propose(
        get_store(request), get_tables(request), as_of, user.actor, get_scores(request)
    )
    return RedirectResponse(f"/committee/warnings?status=proposed&made={len(made)}",
                            status_code=303)  # fmt: skip


@router.get("/warnings/{warning_id}", response_class=HTMLResponse)
def warning_detail(request: Request, warning_id: str, user: User) -> Response:
    store = get_store(request)
    w = store.get(warning_id)
    if w is None:
        raise HTTPException(404, f"no warning {warning_id}")
    subject = Subject.parse(w["subject_kind"], w["subject_key"])
    tables = get_tables(request)
    # history up to the assessment, or up to the latest data while the warning is in force
    end = pd.Timestamp(w["as_of"])
    latest = tables["declarations"]["declared_at"].max()
    if w["status"] == "active" and pd.notna(latest):
        end = max(end, min(pd.Timestamp.now(tz="UTC"), latest))
    weekly, decls, signals = memo(request.app, "history", (subject.kind, subject.key_str,
                                  id(tables), str(end), 26),
                                  lambda: queries.subject_history(tables, subject, end))  # fmt: skip
    evaluation = None
    if w["status"] == "active":
        key = (warning_id, w["updated_at"], id(tables), str(end))
        evaluation = memo(request.app, "evaluation", key,
                          lambda: evaluate_effect(w, tables, end, store.config).to_dict())  # fmt: skip
    recent = decls[decls["declared_at"] > pd.Timestamp(w["as_of"]) - pd.Timedelta(days=28)]
    reasons = shap_reasons(request.app, tables, recent.tail(100))
    return render(request, "warning_detail.html", {
        "user": user, "w": w, "a": w["assessment"], "transitions": store.transitions(warning_id),
        "trend": trend_svg(weekly, w.get("activated_at"), w["as_of"]),
        "weekly": weekly.tail(8), "signals": signals.head(20), "evaluation": evaluation,
        "reasons": reasons, "model_loaded": current_scorer(request.app) is not None,
        "recent": recent.tail(10).iloc[::-1], "msg": request.query_params.get("msg"),
    })  # fmt: skip


@router.post("/warnings/{warning_id}/{action}")
def warning_action(
    request: Request,
    warning_id: str,
    action: str,
    user: User,
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    evaluate: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(user, csrf)
    if action not in WARNING_ACTIONS:
        raise HTTPException(404)
    store = get_store(request)
    tables = get_tables(request) if action == "lift" and evaluate else None
    as_of = None
    if tables is not None:
        as_of = tables["declarations"]["declared_at"].max().isoformat()
    try:
        run_action(store, warning_id, action, user.actor, reason.strip() or None, tables,
                   bool(evaluate), as_of)  # fmt: skip
    except KeyError as exc:
        raise HTTPException(404, f"no warning {warning_id}") from exc
    except InvalidTransition as exc:
        w = store.get(warning_id)
        return render(request, "error.html", {"user": user, "status": 409, "message": str(exc),
                      "back": f"/committee/warnings/{warning_id}", "w": w}, status=409)  # fmt: skip
    return RedirectResponse(f"/committee/warnings/{warning_id}?msg={action}", status_code=303)


@router.get("/model", response_class=HTMLResponse)
def model_card(request: Request, user: User) -> Response:
    scorer = current_scorer(request.app)
    ctx: dict[str, Any] = {"user": user, "scorer": scorer, "tables": [], "charts": [],
                           "tiers": [], "summary": {}}  # fmt: skip
    if scorer is not None:
        card = queries.model_card(scorer)
        sources, budgets = card.pop("sources"), card.pop("budgets")
        card["charts"] = [
            chart
            for subset, label in queries.MODEL_CARD_SUBSETS
            for chart in budget_svgs(sources, budgets, subset, label)
        ]
        ctx.update(card)
    return render(request, "model_card.html", ctx)


@router.get("/declarations/{declaration_id}", response_class=HTMLResponse)
def declaration_page(request: Request, declaration_id: str, user: User) -> Response:
    """A declaration as the API answered it (its audit rows) and, when it is in the store,
    re-explained as of its own time from its point-in-time features by the serving model."""
    tables = get_tables(request)
    record = queries.declaration_record(tables, get_store(request).engine, declaration_id)
    if record is None:
        raise HTTPException(404, f"no declaration {declaration_id}")
    scorer = current_scorer(request.app)
    explanation = None
    if scorer is not None and record["in_store"]:
        explanation = re_explanation(request.app, scorer, tables, declaration_id)
    return render(request, "declaration.html", {"user": user, **record,
                  "explanation": explanation, "model_loaded": scorer is not None})  # fmt: skip


@router.get("/enterprises/{enterprise_id}", response_class=HTMLResponse)
def enterprise_page(request: Request, enterprise_id: str, user: User) -> Response:
    tables = get_tables(request)
    subject = Subject("enterprise", (enterprise_id,))
    decl = tables["declarations"]
    # row positions of each enterprise's declarations, once per loaded store
    by_enterprise = memo(request.app, "by_enterprise", id(tables),
                         lambda: decl.groupby("enterprise_id", observed=True).indices)  # fmt: skip
    positions = by_enterprise.get(enterprise_id)
    if positions is None or not len(positions):
        raise HTTPException(404, f"no enterprise {enterprise_id}")
    mine = decl.iloc[positions]
    end = mine["declared_at"].max()
    weekly, recent, signals = memo(request.app, "history", ("enterprise", enterprise_id,
                                   id(tables), str(end), 52),
                                   lambda: queries.subject_history(tables, subject, end,
                                                                   weeks=52))  # fmt: skip
    store = get_store(request)
    warnings = [w for w in store.list() if w["subject_kind"] == "enterprise"
                and w["subject_key"] == enterprise_id]  # fmt: skip
    return render(request, "enterprise.html", {
        "user": user, "eid": enterprise_id,
        **queries.enterprise_record(tables, mine, enterprise_id),
        "profile": get_profile(store.engine, enterprise_id),  # the latest rescoring run's
        "n_decl": len(mine), "first": mine["declared_at"].min(), "last": end,
        "warnings": warnings, "trend": trend_svg(weekly, None, end.isoformat()),
        "signals": signals.head(10), "recent": recent.tail(10).iloc[::-1],
    })  # fmt: skip


def install_pages(app: Any) -> None:
    """Include the committee router, mount its static assets and install the HTML error pages
    for every 4xx and 5xx under ``/committee``."""
    app.include_router(router)
    mount_static(app)
    install_error_pages(app)
