"""``POST /v1/score`` and ``POST /v1/score/batch``: score, decide, explain, audit.

Plain ``def`` endpoints (CPU work runs in the threadpool, not on the event loop). Each request
reads the current ``Scorer`` once, so a model swap mid-request cannot mix two versions. The audit
rows are committed before the response is built; only then is the snapshot told about the new
declarations (a failed request leaves no trace in the entity history).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic_core import to_json

from serving.audit import canonical_json, sha256_text, write_audit
from serving.auth import InspectorKey
from serving.schemas import (
    ERROR_RESPONSES,
    BatchRequest,
    BatchResponse,
    Declaration,
    ErrorBody,
    ScoreResult,
)
from serving.scoring import CurrencyError, FeatureError, Scorer
from serving.scoring import ScoreResult as Scored
from serving.sync import declaration_row

log = logging.getLogger("guomen.serving.score")

router = APIRouter(prefix="/v1", tags=["score"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    503: {"model": ErrorBody, "description": "no model loaded, or the audit log is unavailable"},
}


async def current_scorer(request: Request) -> Scorer:
    """The ``Scorer`` this request uses from start to end (503 until a model is loaded).

    ``async``: it only reads a reference, so it runs on the event loop (no thread-pool hop).
    """
    scorer = request.app.state.models.current
    if scorer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no verified model loaded yet")
    return scorer


def active_measures(request: Request) -> Sequence[Any]:
    """Active warning measures: the warnings module's provider when installed
    (``app.state.warning_measures``), else ``app.state.measure_provider`` (none by default)."""
    state = request.app.state
    provider = getattr(state, "warning_measures", None) or state.measure_provider
    try:
        return provider()
    except Exception as exc:
        # Fail closed: scoring without the mandatory measures could release what must be held.
        log.error("warning measures unavailable: %s", type(exc).__name__, exc_info=exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "warning measures unavailable; nothing was scored"
        ) from exc


def _json(content: Any) -> Response:
    """The answer serialised once, by pydantic-core (as FastAPI would format it).

    The dict is built field by field from the scorer's typed result, so FastAPI's
    ``response_model`` pass (validate, dump, ``json.dumps``; one more thread-pool hop for a
    plain ``def`` endpoint) would only repeat work; ``response_model`` still documents it, and
    the tests validate real answers against the model.
    """
    return Response(to_json(content, inf_nan_mode="null"), media_type="application/json")


CurrentScorer = Annotated[Scorer, Depends(current_scorer)]
Explain = Annotated[
    Literal["top", "full"],
    Query(description="top: the top_k reasons; full: also every contribution"),
]
TopK = Annotated[int, Query(ge=0, le=1000, description="number of reasons returned")]


def _row(request: Request, declaration: Declaration, loc: tuple[Any, ...]) -> dict[str, Any]:
    """The declaration as the feature pipeline reads it (contract fields, USD value, attributes)."""
    try:
        return declaration_row(declaration, request.app.state.rates)
    except CurrencyError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": (*loc, "currency"),
                    "msg": f"{exc}; send declared_value_usd or use a known currency",
                    "input": declaration.currency,
                }
            ]
        ) from exc


def _score(
    request: Request,
    scorer: Scorer,
    key_id: str,
    declarations: Sequence[Declaration],
    explain: str,
    top_k: int,
    batch: bool,
) -> tuple[str, list[dict[str, Any]]]:
    request_id = uuid.uuid4().hex
    rows = [
        _row(request, d, ("body", "declarations", i) if batch else ("body",))
        for i, d in enumerate(declarations)
    ]
    measures = active_measures(request)
    results: list[Scored]
    try:
        results = scorer.score_many(rows, measures) if batch else [scorer.score(rows[0], measures)]
    except FeatureError as exc:
        i, message = exc.args
        loc = ("body", "declarations", i, "declared_at") if batch else ("body", "declared_at")
        raise RequestValidationError(
            [{"type": "value_error", "loc": loc, "msg": message, "input": None}]
        ) from exc
    ref = scorer.ref
    as_of = scorer.live.as_of
    model = {"name": ref.name, "version": ref.version, "alias": ref.alias}
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    worker_id = request.app.state.worker_id
    for i, (d, r) in enumerate(zip(declarations, results, strict=True)):
        reasons = scorer.reasons(r, top_k)
        # Stored with its hash: the other workers replay it into their snapshots. Bad optional
        # values are stored as sent, so a replay or an export to ingest finds the same issues.
        text = canonical_json(d.as_received())
        data_quality = [x.model_dump(mode="json") for x in d.data_quality]
        warnings = list(r.decision.warnings)
        # Every field of the ``ScoreResult`` schema, defaults included: the endpoints return
        # this dict serialised as is (no second validation pass).
        body: dict[str, Any] = {
            "request_id": request_id,
            "declaration_id": r.declaration_id,
            "probability": r.probability,
            "logit": r.logit,
            "tier": r.tier,
            "decision": r.decision.decision,
            "decision_reason": r.decision.reason,
            "monitoring_selected": r.decision.monitoring_selected,
            "warnings": warnings,
            "reasons": reasons,
            "base_value": r.base_value,
            "contributions": (
                dict(zip(scorer.feature_names, r.contributions.tolist(), strict=True))
                if explain == "full"
                else None
            ),
            "explanation": "exact_treeshap",
            "model": model,
            "snapshot_as_of": as_of,
            "data_quality": data_quality,
        }
        out.append(body)
        audit.append(
            {
                "request_id": request_id,
                "item": i,
                "created_at": now,
                "key_id": key_id,
                "declaration_id": r.declaration_id,
                "input_sha256": sha256_text(text),
                "declaration_json": text,
                "worker_id": worker_id,
                "model_name": ref.name,
                "model_version": ref.version,
                "snapshot_as_of": as_of,
                "probability": r.probability,
                "tier": r.tier,
                "decision": r.decision.decision,
                "decision_reason": r.decision.reason,
                "monitoring_selected": r.decision.monitoring_selected,
                "warnings": warnings,
                "data_quality": data_quality,
                "top_reasons": [
                    {
                        "feature": x["feature"],
                        "value": x["value"],
                        "contribution": x["contribution"],
                    }
                    for x in reasons
                ],
            }
        )
    try:
        write_audit(request.app.state.engine, audit)
    except Exception as exc:
        # No audit row, no answer: the caller retries; the snapshot is left untouched.
        log.error("audit write failed for request %s: %s", request_id, type(exc).__name__)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "audit log unavailable; nothing was scored"
        ) from exc
    scorer.live.add_declarations(rows)
    decisions = request.app.state.metrics.decisions
    for r in results:
        decisions.labels(r.tier, r.decision.decision).inc()
    return request_id, out


@router.post("/score", response_model=ScoreResult, responses=RESPONSES)
def score(
    request: Request,
    declaration: Declaration,
    key: InspectorKey,
    scorer: CurrentScorer,
    explain: Explain = "top",
    top_k: TopK = 5,
) -> Response:
    """Score one declaration: calibrated probability, tier, decision and why, exact reasons.

    ``base_value + sum(contributions) == logit == logit(probability)`` (calibrated log-odds).
    An audit row is stored before the answer is sent.
    """
    _, out = _score(request, scorer, key.key_id, [declaration], explain, top_k, batch=False)
    return _json(out[0])


@router.post("/score/batch", response_model=BatchResponse, responses=RESPONSES)
def score_batch(
    request: Request,
    batch: BatchRequest,
    key: InspectorKey,
    scorer: CurrentScorer,
    explain: Explain = "top",
    top_k: TopK = 5,
) -> Response:
    """Score up to ``Settings.max_batch`` declarations (in order, one audit transaction)."""
    limit = request.app.state.settings.max_batch
    if len(batch.declarations) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "too_long",
                    "loc": ("body", "declarations"),
                    "msg": f"at most {limit} declarations per batch",
                    "input": len(batch.declarations),
                }
            ]
        )
    request_id, out = _score(
        request, scorer, key.key_id, batch.declarations, explain, top_k, batch=True
    )
    return _json({"request_id": request_id, "results": out})
