"""``POST /v1/score`` and ``POST /v1/score/batch``: validate, call the scoring service, map errors.

``/v1/score`` is ``async``: one declaration is about a millisecond of CPU and no I/O besides the
audit commit, so it is scored on the event loop (no thread-pool hop; the pool's threads taking
turns at the GIL cost more CPU than the scoring, docs/api.md "Performance"), and its audit row
goes through :class:`serving.audit.AuditCommitter`, which never makes the loop wait for the
write gate. ``/v1/score/batch`` (up to ``max_batch`` declarations) stays a plain ``def`` in the
thread pool. The work (score, explain, audit, then update the snapshot) is
:mod:`serving.score_service`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic_core import to_json

from serving.auth import InspectorKey
from serving.deps import CurrentScorer, active_measures
from serving.phase_timing import mark
from serving.schemas import (
    ERROR_RESPONSES,
    BatchRequest,
    BatchResponse,
    Declaration,
    ErrorBody,
    ScoreResult,
)
from serving.score_service import (
    AuditUnavailable,
    ScoredCall,
    ScoringCall,
    ScoringRefused,
    score_declarations,
    score_on_loop,
)
from serving.scoring import Scorer

log = logging.getLogger("guomen.serving.score")

router = APIRouter(prefix="/v1", tags=["score"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    503: {"model": ErrorBody, "description": "no model loaded, or the audit log is unavailable"},
}


def _json(content: Any) -> Response:
    """The answer serialised once, by pydantic-core (as FastAPI would format it).

    The dict is built field by field from the scorer's typed result, so FastAPI's
    ``response_model`` pass (validate, dump, ``json.dumps``; one more thread-pool hop for a
    plain ``def`` endpoint) would only repeat work; ``response_model`` still documents it, and
    the tests validate real answers against the model.
    """
    return Response(to_json(content, inf_nan_mode="null"), media_type="application/json")


Explain = Annotated[
    Literal["top", "full"],
    Query(description="top: the top_k reasons; full: also every contribution"),
]
TopK = Annotated[int, Query(ge=0, le=1000, description="number of reasons returned")]


@contextlib.contextmanager
def _refusals_mapped() -> Iterator[None]:
    """The scoring service's refusals as HTTP answers."""
    try:
        yield
    except ScoringRefused as exc:
        raise RequestValidationError(exc.errors) from exc
    except AuditUnavailable as exc:
        # No audit row, no answer: the caller retries; the snapshot is left untouched.
        log.error("%s: %s", exc, type(exc.__cause__).__name__)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "audit log unavailable; nothing was scored"
        ) from exc


def _service_state(request: Request) -> dict[str, Any]:
    """What the scoring service takes from the app: the audit engine, rates, worker id."""
    state = request.app.state
    return {"engine": state.engine, "rates": state.rates, "worker_id": state.worker_id}


def _counted(request: Request, done: ScoredCall) -> ScoredCall:
    decisions = request.app.state.metrics.decisions
    for r in done.results:
        decisions.labels(r.tier, r.decision.decision).inc()
    return done


def _score(
    request: Request, scorer: Scorer, declarations: list[Declaration], call: ScoringCall
) -> ScoredCall:
    """Run the scoring service for one batch request (blocking: in a worker thread)."""
    with _refusals_mapped():
        done = score_declarations(scorer, declarations, active_measures(request), call,
                                  **_service_state(request))  # fmt: skip
    return _counted(request, done)


async def _score_on_loop(
    request: Request, scorer: Scorer, declaration: Declaration, call: ScoringCall
) -> ScoredCall:
    """Run the scoring service for one declaration on the event loop."""
    with _refusals_mapped():
        done = await score_on_loop(scorer, [declaration], active_measures(request), call,
                                   **_service_state(request))  # fmt: skip
    return _counted(request, done)


@router.post("/score", response_model=ScoreResult, responses=RESPONSES)
async def score(
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
    call = ScoringCall(key.key_id, explain, top_k, batch=False)
    answer = _json((await _score_on_loop(request, scorer, declaration, call)).bodies[0])
    mark("json")
    return answer


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
    call = ScoringCall(key.key_id, explain, top_k, batch=True)
    done = _score(request, scorer, batch.declarations, call)
    return _json({"request_id": done.request_id, "results": done.bodies})
