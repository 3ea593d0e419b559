"""The FastAPI application: ``create_app(settings)``.

Everything heavy happens in the lifespan, once per process: the DB engine and schema, the key
store, the rate table, the online snapshot and the champion model (resolved in the registry,
verified, warmed). A background thread then polls the registry and swaps in a new champion.
The routers are listed in :data:`ROUTER_MODULES`, in one place, never discovered.

Run with ``guomen serve`` (uvicorn); with several workers uvicorn imports :func:`app_from_env`.
"""

from __future__ import annotations

import gc
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from features.rates import load_rates
from guomen.settings import Settings, get_settings
from riskmodel import ModelRef
from serving.audit import close_audit
from serving.auth import KeyStore
from serving.db import create_schema, make_engine
from serving.decisions import no_measures
from serving.metrics import Metrics, MetricsMiddleware
from serving.openapi import install_openapi
from serving.phase_timing import PhaseTimingMiddleware, configured_path
from serving.registry import ModelManager
from serving.request_guard import StrictJSONMiddleware, validation_error_handler
from serving.routes import (
    backtest_pages,
    enterprises,
    health,
    inspections,
    keys,
    model,
    pages,
    plan_pages,
    score,
    warning_record,  # before pages: /committee/warnings/{id} would take it
)
from serving.routes import warnings as warning_routes  # not the standard library's
from serving.scoring import LiveSnapshot, Scorer
from serving.security_headers import SecurityHeadersMiddleware
from serving.storage import StorageProbe
from serving.sync import SnapshotSync, new_worker_id

log = logging.getLogger("guomen.serving")

API_DESCRIPTION = """Risk scoring of import/export declarations: calibrated probability of a
nonconformity, supervision tier and decision, exact TreeSHAP reasons, audit of every answer.

Authenticate with the `X-API-Key` header (`guomen keys create --role inspector`)."""


class BodyLimitMiddleware:
    """Pure ASGI middleware: 413 for a body over ``max_bytes``.

    Checks the declared ``Content-Length`` first, then counts the streamed bytes (chunked bodies
    have no length); once over the limit it answers 413 itself and tells the app the client left.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        body = b'{"detail":"request body too large (limit %d bytes)"}' % self.max_bytes
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
                break
        received = 0
        rejected = False
        started = False

        async def limited_receive() -> dict:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request" and not rejected:
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    if not started:
                        await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if rejected:
                return  # the 413 is already out; the app's answer to the "disconnect" is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


# Every router of the API, in the order its routes are matched. A module exposes ``router`` and
# may define ``install(app)`` (run in the lifespan once ``app.state`` holds the engine, settings
# and models) and ``install_pages(app)`` (includes its router with its own error handling).
ROUTER_MODULES: tuple[ModuleType, ...] = (
    health,
    score,
    inspections,
    model,
    keys,
    enterprises,
    warning_routes,
    warning_record,  # before pages: /committee/warnings/{id} would take "record"
    plan_pages,
    backtest_pages,
    pages,
)


def _load_live_snapshot(app: FastAPI) -> LiveSnapshot:
    """The process's live snapshot, loaded on first need (a failed load is retried later)."""
    live: LiveSnapshot | None = app.state.live
    if live is None:
        from features.snapshot import Snapshot

        settings: Settings = app.state.settings
        live = LiveSnapshot(Snapshot.load(settings.home / settings.snapshot_dir))
        app.state.live = live
        log.info("snapshot loaded from %s (as of %s)", settings.snapshot_dir, live.as_of)
    return live


def _freeze_heap() -> None:
    """Move every object alive now (model, snapshot, imports) out of the cyclic GC's reach.

    A full collection walks every tracked object: with the snapshot loaded that is ~30 ms of
    stop-the-world, landing on whichever request triggers it (it was the p99). Frozen objects
    are still freed by reference counting; a replaced model's reference cycles are not
    collected, a bounded cost paid once per reload.
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. Nothing is loaded until the app starts (lifespan).

    Parameters
    ----------
    settings
        Defaults to :func:`guomen.settings.get_settings`.
    """
    settings = settings or get_settings()
    settings.require_secrets()  # no serving on a missing, default or shared secret

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, settings.sqlite_synchronous)
        await anyio.to_thread.run_sync(create_schema, engine)
        app.state.engine = engine
        app.state.keys = KeyStore(engine, settings.key_cache_seconds)
        app.state.storage = StorageProbe(engine)
        app.state.rates = load_rates(settings.rates_file)
        app.state.live = None
        app.state.measure_provider = no_measures
        # Names this process's audit and inspection rows; the other workers replay them.
        app.state.worker_id = new_worker_id()
        sync = SnapshotSync(
            engine,
            lambda: app.state.live,
            app.state.worker_id,
            app.state.rates,
            settings.snapshot_sync_seconds,
        )
        app.state.sync = sync
        secret = settings.secret("monitoring_secret")
        measure_secret = settings.secret("measure_secret")

        def build(bundle: Any, ref: ModelRef) -> Scorer:
            return Scorer(
                bundle,
                ref,
                _load_live_snapshot(app),
                secret=secret,
                measure_secret=measure_secret,
                rates=app.state.rates,
                # per-group shares of the approved monitoring plan (serving.plan_store)
                monitoring=getattr(app.state, "monitoring_quotas", None),
            )

        def on_swap(scorer: Scorer) -> None:
            ref = scorer.ref
            metrics.set_model(ref.name, ref.version, ref.alias, scorer.explainer_name)
            _freeze_heap()

        manager = ModelManager(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            alias=settings.model_alias,
            build=build,
            home=settings.home,
            cache_dir=settings.home / settings.models_dir / "registry-cache",
            on_swap=on_swap,
        )
        app.state.models = manager
        for module in ROUTER_MODULES:
            install = getattr(module, "install", None)
            if install is not None:
                install(app)
        outcome = await anyio.to_thread.run_sync(manager.check)
        metrics.reloads.labels("loaded" if outcome.changed else "failed").inc()
        if manager.current is None:
            log.error("not ready: %s", outcome.detail)
        # Before the first request: the events other workers stored since the snapshot's as_of
        # (when the snapshot failed to load, the sync thread does this once it is loaded).
        await anyio.to_thread.run_sync(sync.catch_up)
        _freeze_heap()
        manager.start_polling(settings.reload_poll_seconds)
        sync.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(sync.stop)
            await anyio.to_thread.run_sync(manager.stop)
            await anyio.to_thread.run_sync(close_audit, engine)
            engine.dispose()
            metrics.worker_exited()

    app = FastAPI(
        title="guomen scoring API",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    metrics = Metrics()
    app.state.metrics = metrics
    for module in ROUTER_MODULES:
        include_pages = getattr(module, "install_pages", None)
        if include_pages is not None:
            include_pages(app)  # includes its router and its own exception handler
        else:
            app.include_router(module.router)

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Last resort only: every expected failure is mapped to a 4xx (or 503) by the routes.
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        if request.url.path.startswith("/committee"):
            return pages.error_page(request, 500, "internal error; the error is in the log")
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_exception_handler(Exception, internal_error)
    install_hardening(app, settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    phase_file = configured_path()
    if phase_file is not None:  # outermost; not installed at all when off
        app.add_middleware(PhaseTimingMiddleware, path=phase_file)
    return app


def install_hardening(app: FastAPI, max_body_bytes: int) -> None:
    """What every guomen app has in front of its routes: 422s that always serialise, the
    completed OpenAPI document, the JSON guard, the body limit and the security headers.

    Middleware added later runs first: the JSON guard reads bodies the limit has bounded, and
    the headers reach every answer, a 413 included.
    """
    # A handler installed before (the committee pages' HTML errors) keeps answering; whatever it
    # cannot serialise gets the safe JSON answer instead of a 500.
    earlier = app.exception_handlers.get(RequestValidationError)

    async def validation_error(request: Request, exc: Exception) -> Response:
        if earlier is not None:
            try:
                answer = earlier(request, exc)
                return await answer if inspect.isawaitable(answer) else answer
            except (ValueError, UnicodeError):
                pass
        return await validation_error_handler(request, exc)

    app.add_exception_handler(RequestValidationError, validation_error)
    install_openapi(app)
    app.add_middleware(StrictJSONMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several workers): settings from the environment."""
    return create_app(get_settings())
