"""Liveness, readiness and Prometheus metrics (no key needed: they reveal no data)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from serving.schemas import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "no verified model loaded yet, or the database is not writable",
        }
    },
)
def readyz(request: Request) -> Response:
    """Ready only when a verified model (and the snapshot it scores against) is loaded and the
    database takes writes (a probe write at most once a second: ``serving.storage``)."""
    manager = getattr(request.app.state, "models", None)
    scorer = manager.current if manager is not None else None
    storage = getattr(request.app.state, "storage", None)
    probe = storage.check() if storage is not None else None
    if probe is not None and not probe.writable:
        body = Readiness(
            ready=False,
            model_version=scorer.ref.version if scorer is not None else None,
            snapshot_as_of=scorer.live.as_of if scorer is not None else None,
            detail=probe.detail,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    if scorer is None:
        body = Readiness(
            ready=False,
            model_version=None,
            snapshot_as_of=None,
            detail=(manager.last_error if manager is not None else None) or "loading",
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    body = Readiness(ready=True, model_version=scorer.ref.version, snapshot_as_of=scorer.live.as_of)
    return JSONResponse(body.model_dump(mode="json"))


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: requests, latencies, decisions by tier, model version."""
    payload, content_type = request.app.state.metrics.render()
    return Response(payload, media_type=content_type)
