"""Server-rendered committee pages: login, warnings, warning detail, model card, declaration
explanation (waterfall) and enterprise profile. Every asset is local; charts are drawn on the
server with matplotlib (SVG inline).

Browsers cannot send ``X-API-Key``, so a committee member signs in once with their API key;
sessions, cookies and CSRF tokens live in ``serving.sessions``.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
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
from serving.auth import KeyStore
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
    next: Annotated[str, Form(max_length=500)] = "/committee/warnings",
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
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR.resolve() or not path.is_file():
        raise HTTPException(404)
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


@router.get("")
@router.get("/")
def index(user: User) -> Response:
    return RedirectResponse("/committee/warnings", status_code=303)


# ------------------------------------------------------------------------------ charts


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg") :]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text (CJK shown by the browser's fonts)
    return plt


def trend_svg(weekly: pd.DataFrame, activated_at: str | None, as_of: str) -> str:
    """Weekly inspections (bars) and nonconformity rate (line) of a subject."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    if weekly.empty:
        ax.text(0.5, 0.5, "no inspections in the period", ha="center", va="center")
        ax.set_axis_off()
        return _svg(fig)
    idx = pd.DatetimeIndex(weekly.index)
    x = idx.tz_localize(None) if idx.tz is not None else idx
    ax.bar(x, weekly["inspected"], width=5, color="#cfd8e3", label="inspected")
    ax.set_ylabel("inspected / week")
    ax2 = ax.twinx()
    ax2.plot(x, weekly["rate"], color="#c0392b", marker="o", ms=3, label="nonconforming rate")
    ax2.set_ylabel("nonconforming rate")
    ax2.set_ylim(0, max(0.05, float(np.nanmax(weekly["rate"].to_numpy()) if len(weekly) else 0))
                 * 1.15)  # fmt: skip
    ts = pd.Timestamp(as_of).tz_convert(None) if pd.Timestamp(as_of).tzinfo else pd.Timestamp(as_of)
    ax.axvline(ts, color="#555", ls="--", lw=1)
    if activated_at:
        start = pd.Timestamp(activated_at).tz_convert(None)
        if start <= max(x.max(), ts) + pd.Timedelta(days=14):  # keep the axis on the data
            ax.axvline(start, color="#2e7d32", lw=1.5, label="in force")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    return _svg(fig)


def waterfall_svg(base: float, items: list[tuple[str, float]], logit: float) -> str:
    """Waterfall of calibrated log-odds: base value, the largest contributions, the rest."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * (len(items) + 2) + 0.8))
    labels = ["base value"] + [n for n, _ in items] + ["= logit(p)"]
    y = np.arange(len(labels))[::-1]
    ax.barh(y[0], base, color="#7f8c8d")
    running = base
    for i, (_, v) in enumerate(items, start=1):
        ax.barh(y[i], v, left=running, color="#c0392b" if v > 0 else "#2471a3")
        ax.text(running + v, y[i], f" {v:+.3f}", va="center", fontsize=7)
        running += v
    ax.barh(y[-1], logit, color="#34495e")
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_xlabel("calibrated log-odds")
    return _svg(fig)


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


def shap_reasons(request: Request, rows: pd.DataFrame, top: int = 12) -> dict[str, Any] | None:
    """Mean SHAP contribution per feature over the subject's declarations (calibrated log-odds),
    scored with the loaded model against the current snapshot."""
    scorer = _scorer(request)
    if scorer is None or rows.empty:
        return None
    results = scorer.score_many([_row_dict(r) for _, r in rows.iterrows()])
    contrib = np.vstack([r.contributions for r in results])
    mean = contrib.mean(axis=0)
    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")[:top]
    probs = np.array([r.probability for r in results])
    return {
        "n": len(results),
        "mean_probability": float(probs.mean()),
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
    status = status if status in ("proposed", "approved", "rejected", "active", "lifted") else None
    level = level if level in LEVELS else None
    rows = store.list(status=status, level=level)
    counts: dict[tuple[int, str], int] = {}
    for w in store.list():
        counts[(w["level"], w["status"])] = counts.get((w["level"], w["status"]), 0) + 1
    return _render(request, "warnings.html", {"user": user, "warnings": rows, "counts": counts,
                   "status": status, "level": level,
                   "statuses": ("proposed", "active", "rejected", "lifted")})  # fmt: skip


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
        raise HTTPException(422, f"as_of: {exc}") from exc
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
    weekly, decls, signals = subject_history(tables, subject, end)
    evaluation = None
    if w["status"] == "active":
        evaluation = evaluate_effect(w, tables, end, store.config).to_dict()
    recent = decls[decls["declared_at"] > pd.Timestamp(w["as_of"]) - pd.Timedelta(days=28)]
    reasons = shap_reasons(request, recent.tail(200))
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


def _report_dir(scorer: Any) -> Path | None:
    path = getattr(scorer.bundle, "path", None) if scorer is not None else None
    if path is None:
        return None
    report = Path(str(path).rstrip("/") + ".report")
    return report if report.is_dir() else None


@router.get("/model", response_class=HTMLResponse)
def model_card(request: Request, user: User) -> Response:
    scorer = _scorer(request)
    ctx: dict[str, Any] = {"user": user, "scorer": scorer, "budgets": [], "baselines": {},
                           "plots": [], "summary": {}}  # fmt: skip
    if scorer is not None:
        metrics = scorer.bundle.metrics or {}
        report = _report_dir(scorer)
        baselines: dict[str, Any] = {}
        if report is not None and (report / "metrics.json").is_file():
            baselines = json.loads((report / "metrics.json").read_text()).get("baselines", {})
        rows = []
        for b, entry in sorted((metrics.get("budgets") or {}).items(), key=lambda x: float(x[0])):
            row = {"budget": b, "model": entry}
            row["baselines"] = {
                name: (m.get("budgets") or {}).get(b, {}) for name, m in baselines.items()
            }
            rows.append(row)
        ctx.update(
            budgets=rows,
            baselines=sorted(baselines),
            summary={k: metrics.get(k) for k in ("random_sample", "all_inspected") if k in metrics},
            plots=[n for n in PLOT_NAMES if report is not None and (report / n).is_file()],
            ref=getattr(scorer, "ref", None),
            policy=scorer.bundle.policy,
            created_at=scorer.bundle.created_at,
        )
    return _render(request, "model_card.html", ctx)


@router.get("/model/plots/{name}")
def model_plot(request: Request, name: str, user: User) -> Response:
    report = _report_dir(_scorer(request))
    if name not in PLOT_NAMES or report is None or not (report / name).is_file():
        raise HTTPException(404)
    return FileResponse(report / name, media_type="image/png")


@router.get("/declarations/{declaration_id}", response_class=HTMLResponse)
def declaration_page(request: Request, declaration_id: str, user: User) -> Response:
    tables = get_tables(request)
    decl = tables["declarations"]
    match = decl[decl["declaration_id"] == declaration_id]
    if match.empty:
        raise HTTPException(404, f"no declaration {declaration_id}")
    row = _row_dict(match.iloc[0])
    insp = tables.get("inspections")
    result = None
    if insp is not None and len(insp):
        r = insp[insp["declaration_id"] == declaration_id]
        result = _row_dict(r.iloc[0]) if len(r) else None
    measures = [m for m in get_store(request).active_measures() if m.matches(row)]
    scorer = _scorer(request)
    explanation = None
    if scorer is not None:
        res = scorer.score(row, measures)
        order = res.top(12)
        items = [(scorer.feature_names[i], float(res.contributions[i])) for i in order]
        rest = float(res.contributions.sum() - sum(v for _, v in items))
        if abs(rest) > 1e-12:
            items.append((f"{len(res.contributions) - len(items)} other features", rest))
        explanation = {
            "probability": res.probability,
            "tier": res.tier,
            "decision": res.decision,
            "base": res.base_value,
            "logit": res.logit,
            "reasons": scorer.reasons(res, 12),
            "svg": waterfall_svg(res.base_value, items, res.logit),
        }
    return _render(request, "declaration.html", {"user": user, "d": row, "result": result,
                   "explanation": explanation, "measures": measures})  # fmt: skip


@router.get("/enterprises/{enterprise_id}", response_class=HTMLResponse)
def enterprise_page(request: Request, enterprise_id: str, user: User) -> Response:
    tables = get_tables(request)
    subject = Subject("enterprise", (enterprise_id,))
    decl = tables["declarations"]
    mine = decl[subject.mask(decl)]
    if mine.empty:
        raise HTTPException(404, f"no enterprise {enterprise_id}")
    end = mine["declared_at"].max()
    weekly, recent, signals = subject_history(tables, subject, end, weeks=52)
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
