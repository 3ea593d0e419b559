"""Shared request state as FastAPI dependencies, in one place (as the FastAPI template's deps).

``create_app`` puts the process's state on ``app.state`` in its lifespan; routes ask for it
through these ``Annotated`` types instead of reaching into ``request.app.state`` themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.engine import Engine

from guomen.settings import Settings
from serving.scoring import Scorer

log = logging.getLogger("guomen.serving.deps")


def app_settings(request: Request) -> Settings:
    """The settings the app was built with (``create_app(settings)``)."""
    return request.app.state.settings


def db_engine(request: Request) -> Engine:
    """The process's database engine (503 before the lifespan has created it)."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "database not ready")
    return engine


async def current_scorer(request: Request) -> Scorer:
    """The ``Scorer`` this request uses from start to end (503 until a model is loaded).

    ``async``: it only reads a reference, so it runs on the event loop (no thread-pool hop).
    """
    scorer = request.app.state.models.current
    if scorer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no verified model loaded yet")
    return scorer


def active_measures(request: Request) -> Sequence[Any]:
    """Active warning measures, read once per scoring call (called directly, not through
    ``Depends``: a sync dependency would cost a thread-pool hop on every request).

    Active warning measures: the warnings module's provider when installed
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


AppSettings = Annotated[Settings, Depends(app_settings)]
DbEngine = Annotated[Engine, Depends(db_engine)]
CurrentScorer = Annotated[Scorer, Depends(current_scorer)]
