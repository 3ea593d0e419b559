"""Server-rendered committee pages: login, warnings, warning detail, model card, declaration
explanation (waterfall) and enterprise profile. Every asset is local; charts are drawn on the
server with matplotlib (SVG inline).

Browsers cannot send ``X-API-Key``, so a committee member signs in once with their API key;
sessions, cookies and CSRF tokens live in ``serving.sessions``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2.exceptions import UndefinedError

from policy.warnings import (
    LEVELS,
    PUBLICATION_PURPOSES,
    InvalidTransition,
    Subject,
    evaluate_effect,
    signal_matches,
)
from policy.warnings import (
    STATUSES as WARNING_STATUSES,
)
from serving import dashboard
from serving.audit import score_audit
from serving.auth import KeyStore
from serving.charts import Series, line_chart, waterfall_svg
from serving.explanations import PointInTimeFeatures, answered, explain
from serving.request_guard import validation_error
from serving.routes.warnings import get_store, get_tables, run_action, run_propose
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

HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
STATIC_DIR = HERE / "static"
router = APIRouter(prefix="/committee", include_in_schema=False)

PLOT_NAMES = ("calibration.png", "budget_random_sample.png", "budget_all_inspected.png",
              "shap_summary.png")  # fmt: skip


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    ctx = {"levels": LEVELS, "publication_purposes": PUBLICATION_PURPOSES, **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status)


# ------------------------------------------------------------------------------ login


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None, error: str | None = None) -> Response:
    token = new_login_csrf()
    resp = _render(request, "login.html", {"csrf": token, "next": safe_next(next),
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


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    if not name or any(c in name for c in "\x00/\\"):  # NUL makes the path lookup raise
        raise HTTPException(404)
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR.resolve() or not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def landing(request: Request, user: User) -> Response:
    """The committee's office: decisions waiting, warnings in force, today's scoring, the model
    and its health in production."""
    store = get_store(request)
    warnings = store.list()
    proposed = [w for w in warnings if w["status"] == "proposed"]
    in_force: dict[int, list[dict[str, Any]]] = {lv: [] for lv in LEVELS}
    for w in warnings:
        if w["status"] == "active":
            in_force.setdefault(w["level"], []).append(w)
    settings = _settings(request)
    days = dashboard.scored_days(store.engine, settings.timezone, datetime.now(UTC))
    scorer = _scorer(request)
    model: dict[str, Any] | None = None
    health: list[dashboard.MonthHealth] = []
    health_svg = psi_svg = ""
    if scorer is not None:
        metrics = scorer.bundle.metrics or {}
        model = {
            "ref": scorer.ref,
            "created_at": scorer.bundle.created_at,
            "split": metrics.get("split", {}),
            "rows": _headline_rows(metrics, float(scorer.policy.budget)),
        }
        tables = get_tables(request)
        pit = feature_rows(request.app, scorer, tables)
        health = memo(request.app, "health", (pit.version, scorer.ref.version, id(tables)),
                      lambda: dashboard.monthly_health(
                          pit.declared_at_ns, pit.probabilities(scorer), pit.ids,
                          tables.get("inspections"), metrics.get("split", {})))  # fmt: skip
        months = [h.month for h in health]
        health_svg = line_chart(
            "随机监测样本：预测与实际不合格率 Random monitoring sample: predicted vs observed",
            months,
            [
                Series("预测 predicted (mean p)", [h.predicted for h in health]),
                Series("实际 observed rate", [h.observed for h in health]),
            ],  # fmt: skip
            x_title="月份 month (declared)",
            y_title="不合格率 nonconforming rate",
            y_percent=True,
        )
        psi_svg = line_chart(
            "评分漂移 Score drift vs training period (PSI)",
            months,
            [
                Series("PSI", [h.psi for h in health]),
                Series(
                    f"阈值 act threshold {dashboard.PSI_ACT}", [dashboard.PSI_ACT] * len(health)
                ),
            ],  # fmt: skip
            x_title="月份 month (declared)",
            y_title="PSI (无量纲 unitless)",
        )
    return _render(request, "landing.html", {
        "user": user, "proposed": proposed, "in_force": in_force, "days": days, "model": model,
        "health": health, "health_svg": health_svg, "psi_svg": psi_svg,
        "psi_act": dashboard.PSI_ACT, "psi_watch": dashboard.PSI_WATCH,
        "has_record": any(getattr(r, "path", "") == "/committee/warnings/record"
                          for r in request.app.router.routes),
    })  # fmt: skip


def _headline_rows(metrics: dict[str, Any], budget: float) -> list[dict[str, Any]]:
    """Model and baselines at the policy budget, on both test subsets."""
    key = f"{budget:g}"
    rows = []
    sources = [("model 模型", metrics.get("test", {}))]
    sources += sorted((metrics.get("baselines") or {}).items())
    for name, m in sources:
        entry = (m.get("budgets") or {}).get(key, {})
        rows.append({
            "name": name,
            "auc": (m.get("random_sample") or {}).get("auc"),
            "random_sample": entry.get("random_sample", {}),
            "all_inspected": entry.get("all_inspected", {}),
        })  # fmt: skip
    return rows


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, user: User, q: str = "") -> Response:
    """Declarations, enterprises and warning subjects matching ``q`` (an id, an HS4 code, an
    origin country or an overseas party)."""
    q = q.strip()[:64]
    results: dict[str, Any] = {"declarations": [], "enterprises": [], "subjects": []}
    if q:
        tables = get_tables(request)
        decl = tables["declarations"]
        needle = q.upper()
        ids = decl["declaration_id"].astype("str")
        hit = decl[ids.str.upper() == needle]
        results["declarations"] = hit["declaration_id"].astype("str").head(20).tolist()
        with get_store(request).engine.connect() as conn:
            audited = conn.execute(
                sa.select(score_audit.c.declaration_id).where(
                    score_audit.c.declaration_id == q
                ).limit(5)
            ).scalars().all()  # fmt: skip
        for d in audited:
            if d not in results["declarations"]:
                results["declarations"].append(d)
        ents = decl["enterprise_id"].astype("str")
        results["enterprises"] = sorted(set(ents[ents.str.upper() == needle]))[:20]
        subjects = []
        hs4 = decl["hs_code"].astype("str").str.slice(0, 4)
        if (hs4 == q).any():
            subjects.append(("hs4", q, int((hs4 == q).sum())))
        origin = decl["origin_country"].astype("str").str.upper()
        if (origin == needle).any():
            subjects.append(("origin", needle, int((origin == needle).sum())))
        party = decl["overseas_party_id"].astype("str")
        if (party.str.upper() == needle).any():
            subjects.append(("overseas_party", q, int((party.str.upper() == needle).sum())))
        results["subjects"] = subjects
        warnings = get_store(request).list()
        results["warnings"] = [
            w for w in warnings
            if str(w["subject_key"]).upper() == needle or w["id"].upper() == needle
            or needle in str(w["subject_key"]).upper().split("/")
        ][:50]  # fmt: skip
    return _render(request, "search.html", {"user": user, "q": q, "results": results})


def trend_svg(weekly: pd.DataFrame, activated_at: str | None, as_of: str) -> str:
    """Weekly inspections (bars) and nonconformity rate (line) of a subject."""
    labels = [f"{pd.Timestamp(t):%m-%d}" for t in weekly.index]
    title = "每周查验与不合格率 Weekly inspections and nonconforming rate"
    if activated_at:
        title += f" · in force 生效 {str(activated_at)[:10]}"
    return line_chart(
        title,
        labels,
        [
            Series(
                "查验 inspected",
                weekly.get("inspected", pd.Series(dtype=float)).tolist(),
                kind="bar",
            ),
            Series(
                "不合格率 nonconforming rate",
                weekly.get("rate", pd.Series(dtype=float)).tolist(),
                axis="right",
            ),
        ],  # fmt: skip
        x_title="周 week (ending, UTC)",
        y_title="查验数 inspections / week",
        y2_title="不合格率 rate",
        y2_percent=True,
        note=None if len(weekly) else "期间无查验 no inspections in the period",
    )


# ------------------------------------------------------------------------------ data helpers


def _scorer(request: Request) -> Any:
    """The serving model (``app.state.models.current``), or None when none is loaded."""
    models = getattr(request.app.state, "models", None)
    return getattr(models, "current", None)


def _row_dict(row: pd.Series) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            out[str(k)] = None
        elif isinstance(v, np.generic):
            out[str(k)] = v.item()
        else:
            out[str(k)] = v
    return out


def point_in_time(app: Any) -> PointInTimeFeatures:
    """The app's cache of point-in-time feature rows (next to the store)."""
    state = app.state
    cache = getattr(state, "point_in_time", None)
    if cache is None:
        root = Path(_app_settings(app).store_dir)
        cache = state.point_in_time = PointInTimeFeatures(root.parent / "explain-cache")
    return cache


def feature_rows(app: Any, scorer: Any, tables: dict[str, pd.DataFrame]) -> Any:
    """Point-in-time feature rows of the store in the serving model's column order."""
    from features.store import Store

    root = Path(_app_settings(app).store_dir)
    attributes = Store(root).attributes if (root / "manifest.json").is_file() else None
    bundle = scorer.bundle
    return point_in_time(app).rows(
        root,
        tables,
        attributes,
        scorer.feature_names,
        entities=bundle.entities,
        categories=bundle.categories,
    )


def prepare_explanations(app: Any, tables: dict[str, pd.DataFrame]) -> int:
    """Build the point-in-time rows and the model's probabilities before the first page asks
    (``guomen up`` calls it); returns the number of rows."""
    scorer = getattr(getattr(app.state, "models", None), "current", None)
    if scorer is None:
        return 0
    rows = feature_rows(app, scorer, tables)
    rows.probabilities(scorer)
    return len(rows.ids)


def shap_reasons(request: Request, rows: pd.DataFrame, top: int = 12) -> dict[str, Any] | None:
    """Mean SHAP contribution per feature over the subject's declarations (calibrated log-odds),
    each explained as of its own time from its point-in-time features by the serving model;
    cached per store version, model version and set of declarations."""
    scorer = _scorer(request)
    if scorer is None or rows.empty:
        return None
    pit = feature_rows(request.app, scorer, get_tables(request))
    ids = rows["declaration_id"].astype("str").tolist()
    key = (pit.version, scorer.ref.version, scorer.ref.manifest_sha256, tuple(ids))
    cache: dict[Any, Any] | None = getattr(request.app.state, "shap_reasons_cache", None)
    if cache is None:
        cache = request.app.state.shap_reasons_cache = {}
    if key in cache:
        return cache[key]
    found, X = pit.lookup(ids)
    if not found:
        return None
    scores = explain(scorer, X)
    contrib = scores.contributions
    mean = contrib.mean(axis=0)
    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")[:top]
    out = {
        "n": len(found),
        "mean_probability": float(scores.probability.mean()),
        "model": f"{scorer.ref.name} v{scorer.ref.version}",
        "reasons": [
            {
                "feature": scorer.feature_names[i],
                "description": scorer.descriptions[i][0] or scorer.descriptions[i][1],
                "mean": float(mean[i]),
                "mean_abs": float(mean_abs[i]),
            }
            for i in order
        ],
    }
    if len(cache) > 256:
        cache.clear()
    cache[key] = out
    return out


def memo(app: Any, name: str, key: Any, compute: Any) -> Any:
    """``compute()`` cached on the app under ``name`` for ``key`` (the latest few keys kept):
    page parts that only change with the store, the model or a warning's state."""
    caches: dict[str, dict[Any, Any]] | None = getattr(app.state, "page_memo", None)
    if caches is None:
        caches = app.state.page_memo = {}
    cache = caches.setdefault(name, {})
    if key not in cache:
        if len(cache) >= 64:
            cache.pop(next(iter(cache)))
        cache[key] = compute()
    return cache[key]


def _settings(request: Request) -> Any:
    return _app_settings(request.app)


def _app_settings(app: Any) -> Any:
    settings = getattr(app.state, "settings", None)
    if settings is None:
        from guomen.settings import get_settings

        settings = get_settings()
    return settings


def subject_history(
    tables: dict[str, pd.DataFrame], subject: Subject, end: pd.Timestamp, weeks: int = 26
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(weekly inspections and rate, the subject's recent declarations, its recent signals)."""
    start = end - pd.Timedelta(weeks=weeks)
    decl = tables["declarations"]
    d = decl[(decl["declared_at"] > start) & (decl["declared_at"] <= end)]
    d = d[subject.mask(d)]
    insp = tables.get("inspections")
    weekly = pd.DataFrame(columns=["inspected", "nonconforming", "rate"])
    if insp is not None and len(insp) and len(d):
        i = insp[insp["declaration_id"].isin(d["declaration_id"]) & (insp["inspected_at"] <= end)]
        if len(i):
            g = i.assign(bad=(i["result"] == "nonconforming")).set_index("inspected_at")
            weekly = g["bad"].resample("W").agg(["size", "sum"])
            weekly.columns = ["inspected", "nonconforming"]
            weekly["rate"] = weekly["nonconforming"] / weekly["inspected"].where(
                weekly["inspected"] > 0
            )
    sig = tables.get("risk_signals")
    signals = pd.DataFrame()
    if sig is not None and len(sig):
        s = sig[(sig["reported_at"] > start) & (sig["reported_at"] <= end)]
        # the assessment's own rule: HS4 sets and chapters included, with each signal's weight
        m = signal_matches(s, subject.kind)
        signals = m[m["key"] == subject.key_str].sort_values("reported_at", ascending=False)
    return weekly, d.sort_values("declared_at"), signals


def _fmt_pct(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError, UndefinedError):  # missing metric: show a dash
        return "–"
    return "–" if math.isnan(f) else f"{f:.1%}"


templates.env.filters["pct"] = _fmt_pct


# ------------------------------------------------------------------------------ pages


@router.get("/warnings", response_class=HTMLResponse)
def warnings_page(
    request: Request, user: User, status: str | None = None, level: int | None = None
) -> Response:
    store = get_store(request)
    status = status if status in WARNING_STATUSES else None
    level = level if level in LEVELS else None
    rows = store.list(status=status, level=level)
    counts: dict[tuple[int, str], int] = {}
    for w in store.list():
        counts[(w["level"], w["status"])] = counts.get((w["level"], w["status"]), 0) + 1
    return _render(request, "warnings.html", {"user": user, "warnings": rows, "counts": counts,
                   "status": status, "level": level,
                   "statuses": ("proposed", "active", "rejected", "lifted", "lapsed")})  # fmt: skip


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
    made = run_propose(get_store(request), get_tables(request), as_of, user.actor)
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
                                  lambda: subject_history(tables, subject, end))  # fmt: skip
    evaluation = None
    if w["status"] == "active":
        key = (warning_id, w["updated_at"], id(tables), str(end))
        evaluation = memo(request.app, "evaluation", key,
                          lambda: evaluate_effect(w, tables, end, store.config).to_dict())  # fmt: skip
    recent = decls[decls["declared_at"] > pd.Timestamp(w["as_of"]) - pd.Timedelta(days=28)]
    reasons = shap_reasons(request, recent.tail(100))
    return _render(request, "warning_detail.html", {
        "user": user, "w": w, "a": w["assessment"], "transitions": store.transitions(warning_id),
        "trend": trend_svg(weekly, w.get("activated_at"), w["as_of"]),
        "weekly": weekly.tail(8), "signals": signals.head(20), "evaluation": evaluation,
        "reasons": reasons, "model_loaded": _scorer(request) is not None,
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
    if action not in ("approve", "reject", "escalate", "de-escalate", "lift"):
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
        return _render(request, "error.html", {"user": user, "status": 409, "message": str(exc),
                       "back": f"/committee/warnings/{warning_id}", "w": w}, status=409)  # fmt: skip
    return RedirectResponse(f"/committee/warnings/{warning_id}?msg={action}", status_code=303)


SUBSETS = (("random_sample", "随机监测样本 random monitoring sample"),
           ("all_inspected", "全部已查验 all inspected"))  # fmt: skip


@router.get("/model", response_class=HTMLResponse)
def model_card(request: Request, user: User) -> Response:
    scorer = _scorer(request)
    ctx: dict[str, Any] = {"user": user, "scorer": scorer, "tables": [], "charts": [],
                           "tiers": [], "summary": {}}  # fmt: skip
    if scorer is not None:
        metrics = scorer.bundle.metrics or {}
        test = metrics.get("test", {})
        sources = [("model 模型", test)] + sorted((metrics.get("baselines") or {}).items())
        budgets = sorted((test.get("budgets") or {}), key=float)
        tables, charts = [], []
        for subset, label in SUBSETS:
            rows = []
            for b in budgets:
                for name, m in sources:
                    entry = ((m.get("budgets") or {}).get(b) or {}).get(subset) or {}
                    rows.append({"budget": float(b), "name": name, **entry})
            tables.append({"subset": subset, "label": label, "rows": rows})
            x = [f"{float(b):.0%}" for b in budgets]
            for metric, mlabel in (("precision", "精确率 precision"),
                                   ("critical_recall", "严重问题召回率 critical recall")):  # fmt: skip
                series = [
                    Series(
                        name,
                        [
                            ((m.get("budgets") or {}).get(b) or {})
                            .get(subset, {})
                            .get(metric, float("nan"))
                            for b in budgets
                        ],
                    )  # fmt: skip
                    for name, m in sources
                ]
                # metrics stored as JSON: a NaN (no positive in the subset) is null
                empty = all(
                    v is None or not math.isfinite(float(v)) for se in series for v in se.values
                )
                charts.append(line_chart(
                    f"{mlabel} · {label}", x, series, x_title="查验预算 inspection budget "
                    "(share of declarations 占报关单比例)", y_title=f"{mlabel}", y_percent=True,
                    note="该样本中无严重问题 no critical finding in this sample" if empty else None,
                ))  # fmt: skip
        policy = scorer.bundle.policy or {}
        shares = policy.get("tier_shares") or {}
        thresholds = policy.get("thresholds") or {}
        tier_rows = []
        for tier in sorted(thresholds, key=lambda t: -float(thresholds[t])):
            tier_rows.append({"tier": tier, "threshold": float(thresholds[tier]),
                              "share": shares.get(tier)})  # fmt: skip
        for tier in shares:
            if tier not in thresholds:
                tier_rows.append({"tier": tier, "threshold": None, "share": shares[tier]})
        ctx.update(
            tables=tables,
            charts=charts,
            tiers=tier_rows,
            summary={k: test.get(k) for k, _ in SUBSETS if k in test},
            ref=getattr(scorer, "ref", None),
            policy=policy,
            split=metrics.get("split", {}),
            counts=metrics.get("counts", {}),
            created_at=scorer.bundle.created_at,
            explainer=scorer.explainer_name,
        )
    return _render(request, "model_card.html", ctx)


def re_explanation(
    app: Any, scorer: Any, tables: dict[str, pd.DataFrame], declaration_id: str
) -> dict[str, Any] | None:
    """A store declaration explained as of its own time: its point-in-time features, the serving
    model, the arithmetic of the API and rescoring. None when it is not in the store."""
    found, X = feature_rows(app, scorer, tables).lookup([declaration_id])
    if not found:
        return None
    scores = explain(scorer, X)
    contributions = scores.contributions[0]
    order = np.argsort(-np.abs(contributions), kind="stable")[:12]
    items = [(scorer.feature_names[i], float(contributions[i])) for i in order]
    rest = float(contributions.sum() - sum(v for _, v in items))
    if abs(rest) > 1e-12:
        items.append((f"{len(contributions) - len(items)} other features", rest))
    probability = float(scores.probability[0])
    return {
        "probability": probability,
        "tier": scorer.policy.tier(probability),
        "base": float(scores.base[0]),
        "logit": float(scores.logit[0]),
        "contributions": contributions,
        "model": f"{scorer.ref.name} v{scorer.ref.version}",
        "reasons": [
            {
                "feature": scorer.feature_names[i],
                "description_zh": scorer.descriptions[i][0],
                "value": float(X[0, i]) if np.isfinite(X[0, i]) else None,
                "contribution": float(contributions[i]),
            }
            for i in order
        ],
        "svg": waterfall_svg(float(scores.base[0]), items, float(scores.logit[0])),
    }


@router.get("/declarations/{declaration_id}", response_class=HTMLResponse)
def declaration_page(request: Request, declaration_id: str, user: User) -> Response:
    """A declaration as the API answered it (its audit rows) and, when it is in the store,
    re-explained as of its own time from its point-in-time features by the serving model."""
    store = get_store(request)
    audit = answered(store.engine, declaration_id)
    tables = get_tables(request)
    decl = tables["declarations"]
    match = decl[decl["declaration_id"] == declaration_id]
    if match.empty and not audit:
        raise HTTPException(404, f"no declaration {declaration_id}")
    row = _row_dict(match.iloc[0]) if len(match) else dict(audit[0]["declaration"] or {})
    row.setdefault("declaration_id", declaration_id)
    insp = tables.get("inspections")
    result = None
    if insp is not None and len(insp):
        r = insp[insp["declaration_id"] == declaration_id]
        result = _row_dict(r.iloc[0]) if len(r) else None
    scorer = _scorer(request)
    explanation = None
    if scorer is not None and len(match):
        explanation = re_explanation(request.app, scorer, tables, declaration_id)
    return _render(request, "declaration.html", {"user": user, "d": row, "result": result,
                   "explanation": explanation, "audit": audit,
                   "in_store": bool(len(match)), "model_loaded": scorer is not None})  # fmt: skip


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
                                   lambda: subject_history(tables, subject, end, weeks=52))  # fmt: skip
    insp = tables.get("inspections")
    n_insp = n_bad = 0
    if insp is not None and len(insp):
        i = insp[insp["declaration_id"].isin(mine["declaration_id"])]
        n_insp, n_bad = len(i), int((i["result"] == "nonconforming").sum())
    info = None
    ent = tables.get("enterprises")
    if ent is not None and len(ent) and "enterprise_id" in ent:
        e = ent[ent["enterprise_id"] == enterprise_id]
        info = _row_dict(e.iloc[0]) if len(e) else None
    credit = None
    cr = tables.get("credit_ratings")
    if cr is not None and len(cr) and "rating" in cr:
        c = cr[cr["enterprise_id"] == enterprise_id].sort_values("effective_from")
        credit = str(c["rating"].iloc[-1]) if len(c) else None
    profile = None
    try:  # the rescoring engineer's profiles, when a rescoring run stored them
        from serving.rescore.db import get_profile

        profile = get_profile(get_store(request).engine, enterprise_id)
    except Exception:  # noqa: BLE001 - no profile table yet is a normal state
        profile = None
    warnings = [w for w in get_store(request).list() if w["subject_kind"] == "enterprise"
                and w["subject_key"] == enterprise_id]  # fmt: skip
    return _render(request, "enterprise.html", {
        "user": user, "eid": enterprise_id, "info": info, "credit": credit, "profile": profile,
        "n_decl": len(mine), "n_insp": n_insp, "n_bad": n_bad,
        "first": mine["declared_at"].min(), "last": end, "warnings": warnings,
        "trend": trend_svg(weekly, None, end.isoformat()), "signals": signals.head(10),
        "recent": recent.tail(10).iloc[::-1],
    })  # fmt: skip


# ------------------------------------------------------------------------------ error pages

ERROR_TITLES = {400: "请求有误 Bad request", 401: "未登录 Not signed in", 403: "无权限 Forbidden",
                404: "未找到 Not found", 405: "方法不允许 Method not allowed",
                409: "状态冲突 Conflict", 422: "输入无效 Invalid input",
                500: "内部错误 Internal error", 503: "暂不可用 Unavailable"}  # fmt: skip


def _user_or_none(request: Request) -> Any:
    from serving.sessions import page_user

    try:
        return page_user(request)
    except Exception:  # noqa: BLE001 - no valid session: the page shows no navigation
        return None


def error_page(request: Request, status: int, message: str) -> Response:
    """An error under ``/committee`` as an HTML page in the site's layout."""
    return _render(request, "error.html", {
        "user": _user_or_none(request), "status": status, "message": message,
        "title": ERROR_TITLES.get(status, f"HTTP {status}"), "back": "/committee",
    }, status=status)  # fmt: skip


def install_pages(app: Any) -> None:
    """Include the committee router, with HTML error pages for every 4xx and 5xx under
    ``/committee`` (other paths keep FastAPI's JSON errors)."""
    from fastapi.exception_handlers import (
        http_exception_handler,
        request_validation_exception_handler,
    )
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.include_router(router)

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/committee") or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        detail = exc.detail if isinstance(exc.detail, str) else ERROR_TITLES.get(exc.status_code)
        return error_page(request, exc.status_code, str(detail or ""))

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/committee"):
            return await request_validation_exception_handler(request, exc)
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return error_page(request, 422, fields or "invalid input")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
