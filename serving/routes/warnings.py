"""JSON API of risk warnings: list, detail, propose, lifecycle actions, export (JSON, CSV).

Routes are thin: they validate, call ``policy.warnings`` / ``serving.warnings_store`` and map
errors (unknown warning 404, refused transition 409). Everything needs the ``committee`` role
(``admin`` passes too).

``create_app`` calls :func:`install` from the lifespan once ``app.state.engine`` exists: it
creates the tables, keeps a :class:`~serving.warnings_store.WarningStore` on
``app.state.warning_store`` and sets ``app.state.measure_provider`` (read by the scoring routes
for ``serving.decisions.decide``) to a :class:`~serving.warnings_store.MeasureCache` of the
active warnings' inspection measures.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from policy.warnings import (
    ACTIONS,
    SUBJECT_KINDS,
    InvalidTransition,
    Subject,
    assess,
    build_warning,
    evaluate_effect,
    load_warning_config,
)
from policy.warnings.subjects import check_subject_key
from serving.auth import ApiKey, require_role
from serving.db import create_schema
from serving.request_guard import validation_error
from serving.warnings_store import (
    EXPORT_FIELDS,
    MeasureCache,
    WarningStore,
    export_rows,
    to_csv,
)

router = APIRouter(prefix="/v1/warnings", tags=["warnings"])
CommitteeKey = Annotated[ApiKey, Depends(require_role("committee"))]
_install_lock = threading.Lock()
T = TypeVar("T")


# ------------------------------------------------------------------------------ wiring


def install(
    app: FastAPI, engine: Any | None = None, config_path: Path | None = None
) -> WarningStore:
    """Migrate ``engine`` to head and put the warning store and measure provider on ``app.state``."""
    engine = engine if engine is not None else app.state.engine
    create_schema(engine)
    store = WarningStore(engine, load_warning_config(config_path))
    app.state.warning_store = store
    app.state.measure_provider = MeasureCache(store)
    return store


def get_store(request: Request) -> WarningStore:
    """The app's warning store (installed on first use when the lifespan did not)."""
    state = request.app.state
    store = getattr(state, "warning_store", None)
    if store is None:
        with _install_lock:
            store = getattr(state, "warning_store", None)
            if store is None:
                engine = getattr(state, "engine", None)
                if engine is None:
                    raise HTTPException(503, "database not ready")
                store = install(request.app, engine)
    return store


def _settings(request: Request) -> Any:
    # Set by ``create_app``; routes never read the environment themselves.
    return request.app.state.settings


def get_tables(request: Request) -> dict[str, pd.DataFrame]:
    """The ingested store's tables, re-read when its manifest changes.

    ``app.state.warning_tables`` (set by whoever already holds the tables) wins.
    """
    state = request.app.state
    tables = getattr(state, "warning_tables", None)
    if tables is not None:
        return tables
    from features.store import Store

    root = Path(_settings(request).store_dir)
    manifest = root / "manifest.json"
    if not manifest.exists():
        raise HTTPException(503, f"no ingested store at {root}")
    stamp = manifest.stat().st_mtime_ns
    return _latest_only(state, "_warning_tables_cache", stamp, lambda: Store(root).tables())


def _latest_only(state: Any, name: str, stamp: Any, compute: Callable[[], T]) -> T:
    """``compute()`` kept on ``state.<name>`` for one ``stamp`` only: the store's tables and a
    rescoring run's scores are large, and only the newest is ever asked for."""
    cached = getattr(state, name, None)
    if cached is not None and cached[0] == stamp:
        return cast(T, cached[1])
    value = compute()
    setattr(state, name, (stamp, value))
    return value


def get_scores(request: Request) -> pd.DataFrame | None:
    """Model scores of declarations (``declaration_id``, ``probability``) for the assessment.

    ``app.state.warning_scores`` (set by whoever already holds them) wins; otherwise the newest
    rescoring run under the data folder (``guomen rescore`` writes ``data/rescore/AS_OF/``),
    re-read when a newer run lands. None when there is none: the assessment then says so.
    """
    state = request.app.state
    given = getattr(state, "warning_scores", None)
    if given is not None:
        return given
    from serving.plan_inputs import latest_scores, score_frame

    run = latest_scores(_settings(request).data_dir)
    if run is None:
        return None
    stamp = (str(run), (run / "scored").stat().st_mtime_ns)
    return _latest_only(state, "_warning_scores_cache", stamp, lambda: score_frame(run))


def actor_of(key: ApiKey) -> str:
    return f"{key.key_id}{f' ({key.name})' if key.name else ''}"


# ------------------------------------------------------------------------------ schemas


class ProposeRequest(BaseModel):
    as_of: str = Field(..., description="assessment time, ISO-8601 (date or datetime)")


class ManualProposal(BaseModel):
    subject_kind: Literal["enterprise", "overseas_party", "hs4", "origin", "hs4_origin"]
    subject_key: str = Field(..., description="e.g. E001, 0303, VN or 0303/VN", max_length=100)
    as_of: str
    reason: str = Field(..., min_length=3, max_length=2000)
    level: int | None = Field(
        None, ge=1, le=4, description="level when the assessment alone gives none"
    )


class ActionRequest(BaseModel):
    reason: str | None = Field(None, max_length=2000)
    start_at: datetime | None = Field(
        None, description="approve: the warning's start time (default now; timezone required)"
    )
    evaluate: bool = Field(False, description="lift: run the effect evaluation first")
    as_of: str | None = Field(None, description="lift: end of the evaluation period")
    threshold: float | None = Field(None, ge=0, le=1)
    period_days: int | None = Field(None, ge=1, le=365)


# ------------------------------------------------------------------------------ services


def run_propose(
    store: WarningStore,
    tables: dict[str, pd.DataFrame],
    as_of: str,
    actor: str,
    scores: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Assess at ``as_of`` and store the new proposals; returns the stored warnings."""
    return store.propose(tables, as_of, actor, scores)


def run_action(
    store: WarningStore,
    warning_id: str,
    action: str,
    actor: str,
    reason: str | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
    evaluate: bool = False,
    as_of: str | None = None,
    threshold: float | None = None,
    period_days: int | None = None,
    start_at: datetime | None = None,
) -> dict[str, Any]:
    """One lifecycle action (``approve`` also activates). Raises KeyError/InvalidTransition."""
    if action not in ACTIONS:
        raise InvalidTransition(f"unknown action {action!r}")
    evaluation = None
    if action == "lift" and evaluate:
        warning = store.get(warning_id)
        if warning is None:
            raise KeyError(warning_id)
        if tables is None:
            raise InvalidTransition("no data to evaluate the effect on")
        end = as_of or pd.Timestamp.now(tz="UTC").isoformat()
        evaluation = evaluate_effect(
            warning, tables, end, store.config, threshold, period_days
        ).to_dict()
    if action == "approve":
        return store.approve(warning_id, actor, reason, start_at)
    return store.apply(warning_id, action, actor, reason, evaluation)


def _check_time(value: str | None, name: str, where: str = "body") -> None:
    """422 for a time that pandas cannot read (instead of a 500 deep in the assessment)."""
    if value is None:
        return
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise validation_error((where, name), f"not an ISO-8601 time ({exc})", value) from exc
    if ts is pd.NaT:
        raise validation_error((where, name), "not an ISO-8601 time", value)


def _not_found(warning_id: str) -> HTTPException:
    return HTTPException(404, f"no warning {warning_id!r}")


# ------------------------------------------------------------------------------ routes


@router.get("", summary="Warnings by level and status")
def list_warnings(
    request: Request,
    key: CommitteeKey,
    status: Annotated[
        Literal["proposed", "approved", "rejected", "active", "lifted", "lapsed"] | None, Query()
    ] = None,
    level: Annotated[int | None, Query(ge=1, le=4)] = None,
) -> list[dict[str, Any]]:
    return get_store(request).list(status=status, level=level)


@router.get("/export", summary="Export warnings (documented schema, docs/warnings.md)")
def export_warnings(
    request: Request,
    key: CommitteeKey,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    status: Annotated[
        Literal["proposed", "approved", "rejected", "active", "lifted", "lapsed"] | None, Query()
    ] = None,
) -> Response:
    rows = export_rows(get_store(request).list(status=status))
    if format == "csv":
        return Response(
            to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="warnings.csv"'},
        )
    body = {"schema": "guomen.warnings/1", "fields": list(EXPORT_FIELDS), "warnings": rows}
    return Response(
        json.dumps(body, ensure_ascii=False), media_type="application/json; charset=utf-8"
    )


@router.post("/propose", summary="Assess every subject at as_of and store new proposals")
def propose_warnings(
    request: Request, body: ProposeRequest, key: CommitteeKey
) -> list[dict[str, Any]]:
    _check_time(body.as_of, "as_of")
    return run_propose(
        get_store(request), get_tables(request), body.as_of, actor_of(key), get_scores(request)
    )


@router.post("/manual", summary="Propose a warning by hand for one subject", status_code=201)
def propose_manual(request: Request, body: ManualProposal, key: CommitteeKey) -> dict[str, Any]:
    _check_time(body.as_of, "as_of")
    try:
        check_subject_key(body.subject_kind, body.subject_key)
        subject = Subject.parse(body.subject_kind, body.subject_key)
    except ValueError as exc:
        raise validation_error(("body", "subject_key"), str(exc)) from exc
    store = get_store(request)
    [a] = assess(get_tables(request), body.as_of, store.config, get_scores(request),
                 subjects=[subject])  # fmt: skip
    if a.level == 0:
        if body.level is None:
            raise validation_error(
                ("body", "level"), "the assessment gives no level: state one (1..4)"
            )
        a.level = body.level
    elif body.level is not None:
        a.level = body.level
    record = build_warning(a, store.config, proposed_by=actor_of(key))
    record["reason"] = body.reason
    if not store.add([record], actor_of(key)):
        raise HTTPException(409, f"warning {record['id']} already exists")
    out = store.get(record["id"])
    assert out is not None
    return out


@router.get("/{warning_id}", summary="A warning, its assessment and its transitions")
def get_warning(request: Request, warning_id: str, key: CommitteeKey) -> dict[str, Any]:
    store = get_store(request)
    w = store.get(warning_id)
    if w is None:
        raise _not_found(warning_id)
    w["transitions"] = store.transitions(warning_id)
    return w


@router.get("/{warning_id}/evaluation", summary="Effect evaluation of an active warning")
def get_evaluation(
    request: Request,
    warning_id: str,
    key: CommitteeKey,
    as_of: str | None = None,
    threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
    period_days: Annotated[int | None, Query(ge=1, le=365)] = None,
) -> dict[str, Any]:
    store = get_store(request)
    w = store.get(warning_id)
    if w is None:
        raise _not_found(warning_id)
    _check_time(as_of, "as_of", "query")
    end = as_of or pd.Timestamp.now(tz="UTC").isoformat()
    return evaluate_effect(
        w, get_tables(request), end, store.config, threshold, period_days
    ).to_dict()


@router.post("/{warning_id}/{action}", summary="approve, reject, escalate, de-escalate or lift")
def act_on_warning(
    request: Request,
    warning_id: str,
    action: Literal["approve", "reject", "escalate", "de-escalate", "lift"],
    key: CommitteeKey,
    body: ActionRequest | None = None,
) -> dict[str, Any]:
    body = body or ActionRequest.model_validate({})
    _check_time(body.as_of, "as_of")
    if body.start_at is not None and body.start_at.tzinfo is None:
        raise validation_error(("body", "start_at"), "start_at needs a timezone offset")
    store = get_store(request)
    tables = get_tables(request) if action == "lift" and body.evaluate else None
    try:
        w = run_action(
            store,
            warning_id,
            action,
            actor_of(key),
            body.reason,
            tables,
            body.evaluate,
            body.as_of,
            body.threshold,
            body.period_days,
            body.start_at,
        )
    except KeyError as exc:
        raise _not_found(warning_id) from exc
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from exc
    w["transitions"] = store.transitions(warning_id)
    return w


__all__ = ["SUBJECT_KINDS", "get_store", "get_tables", "install", "router"]
