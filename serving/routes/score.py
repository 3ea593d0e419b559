"""``POST /v1/score`` and ``POST /v1/score/batch``: validate, call the scoring service, map errors.

``/v1/score`` is ``async``: one declaration is about a millisecond of CPU and no I/O besides the
audit commit, so it is scored on the event loop (no thread-pool hop; the pool's threads taking
turns at the GIL cost more CPU than the scoring, docs/api.md "Performance"), and its audit row
goes through :class:`serving.audit.AuditCommitter`, which never makes the loop wait for the
write gate. ``/v1/score/batch`` (up to ``max_batch`` declarations) stays a plain ``def`` in the
thread pool. The work (score, explain, audit, then update the snapshot) is
:mod:`serving.score_service`.

``/v1/score`` has a fast path (:class:`_ScoreRoute`): a request that is well formed in every
respect (a cached key of an allowed role, a model loaded, plain query parameters, a JSON body
that validates) is read straight from the bytes with pydantic-core and answered without
FastAPI's dependency solving, which cost more CPU than the validation itself (docs/api.md
"The route's CPU"). Anything else goes through FastAPI's own handler of the same signature,
so every 4xx (its shape, the errors merged from query and body, the 401/403) and the OpenAPI
document are FastAPI's, unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from pydantic_core import to_json

from serving.auth import ApiKey, InspectorKey, allowed_roles, granted_from_cache
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
_TOP_K_MAX = 1000  # FastAPI's bound and the fast path's, from one place
TopK = Annotated[int, Query(ge=0, le=_TOP_K_MAX, description="number of reasons returned")]


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


async def _answer(
    request: Request,
    declaration: Declaration,
    key: ApiKey,
    scorer: Scorer,
    explain: str,
    top_k: int,
) -> Response:
    """The answer to one validated ``/v1/score`` request (both paths end here)."""
    call = ScoringCall(key.key_id, explain, top_k, batch=False)
    answer = _json((await _score_on_loop(request, scorer, declaration, call)).bodies[0])
    mark("json")
    return answer


_INSPECTOR = allowed_roles("inspector")
_EXPLAIN = frozenset({"top", "full"})
_TOP_K = re.compile(r"0|[1-9][0-9]{0,3}")  # what the fast path takes; anything else: FastAPI's


def _plain_query(query_string: bytes) -> tuple[str, int] | None:
    """``(explain, top_k)`` when the query holds nothing but valid values of them, each at
    most once (FastAPI would read them the same way); None for anything else."""
    explain, top_k = "top", 5
    if not query_string:
        return explain, top_k
    seen: set[str] = set()
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return None
        seen.add(name)
        if name == "explain" and value in _EXPLAIN:
            explain = value
        elif name == "top_k" and _TOP_K.fullmatch(value) and int(value) <= _TOP_K_MAX:
            top_k = int(value)
        else:
            return None
    return explain, top_k


def _is_plain_json(content_type: str | None) -> bool:
    """``application/json`` (parameters allowed): a type FastAPI parses as JSON."""
    return (
        content_type is not None
        and content_type.partition(";")[0].strip().lower() == "application/json"
    )


async def fast_inputs(
    request: Request,
) -> tuple[Declaration, ApiKey, Scorer, str, int] | None:
    """The inputs of a ``/v1/score`` request that is well formed in every respect, read
    without FastAPI's dependency machinery; None when anything is off (FastAPI's handler
    then answers it, 4xx or not).

    The body is validated from the bytes (``model_validate_json``): JSON the standard
    library would read differently (a byte-order mark, another encoding) fails here and so
    takes FastAPI's path; what passes gives the same ``Declaration`` as FastAPI's
    ``json.loads`` and validation.
    """
    key = granted_from_cache(request, _INSPECTOR)
    scorer = request.app.state.models.current
    if key is None or scorer is None:
        return None
    query = _plain_query(request.scope.get("query_string", b""))
    if query is None or not _is_plain_json(request.headers.get("content-type")):
        return None
    body = await request.body()
    if not body:
        return None
    try:
        declaration = Declaration.model_validate_json(body)
    except ValidationError:
        return None
    return declaration, key, scorer, *query


class _ScoreRoute(APIRoute):
    """FastAPI's route for ``/v1/score``, with :func:`fast_inputs` tried first.

    The route keeps the endpoint's signature, so its OpenAPI operation and its handling of
    every request the fast path declines are FastAPI's own. The body the fast path read is
    cached on the ``Request``, which FastAPI's handler reads again.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()

        async def handler(request: Request) -> Response:
            inputs = await fast_inputs(request)
            if inputs is None:
                return await full(request)
            return await _answer(request, *inputs)

        return handler


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
    return await _answer(request, declaration, key, scorer, explain, top_k)


router.add_api_route(
    "/score",
    score,
    methods=["POST"],
    response_model=ScoreResult,
    responses=RESPONSES,
    route_class_override=_ScoreRoute,
)


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
