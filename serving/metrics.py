"""Prometheus metrics: request counts and latencies, decisions by tier, the model version.

Each app gets its own ``CollectorRegistry`` (several apps in one test process must not collide).
With several worker processes, prometheus_client's multiprocess mode aggregates them: when
``PROMETHEUS_MULTIPROC_DIR`` is set (``guomen serve --workers N`` sets it to a fresh directory
before the workers start), every worker writes its values to memory-mapped files there and any
worker's ``/metrics`` answers for all of them (counters and histograms summed, the model gauges
per live worker with a ``pid`` label).
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared metrics directory of a multi-worker server, or None in a single process."""
    return os.environ.get(MULTIPROC_ENV) or None


LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """The app's collectors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "guomen_http_requests",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "guomen_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "guomen_decisions",
            "Scored declarations by tier and decision",
            ["tier", "decision"],
            registry=self.registry,
        )
        # Per live worker (a worker may briefly serve another version during a reload).
        self.model_info = Gauge(
            "guomen_model_info",
            "The model version being served (value 1)",
            ["name", "version", "alias", "explainer"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.model_loaded_at = Gauge(
            "guomen_model_loaded_timestamp_seconds",
            "When the served model version was loaded",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.reloads = Counter(
            "guomen_model_reloads",
            "Model reload checks by outcome",
            ["outcome"],
            registry=self.registry,
        )

    def set_model(self, name: str, version: str, alias: str | None, explainer: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name, version, alias or "", explainer).set(1)
        self.model_loaded_at.set(time.time())

    def render(self) -> tuple[bytes, str]:
        """The exposition text: this process's collectors, or every worker's in multiprocess mode."""
        shared = multiprocess_dir()
        if shared is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=shared)
        return generate_latest(merged), CONTENT_TYPE_LATEST

    @staticmethod
    def worker_exited() -> None:
        """Drop this worker's live gauges from the shared directory (its counters stay summed)."""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())


class MetricsMiddleware:
    """Pure ASGI middleware counting requests and timing them by route template.

    The route template (``/v1/score``, not the raw path) keeps the label set bounded; unmatched
    paths are counted as ``<unmatched>``.
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._cache: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_holder = [500]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "")
            count, latency = self._children(method, template, status_holder[0])
            count.inc()
            latency.observe(time.perf_counter() - start)

    def _children(self, method: str, template: str, status: int) -> tuple[Any, Any]:
        """The labelled collectors, looked up once per label set (``labels()`` is not free)."""
        key = (method, template, status)
        children = self._cache.get(key)
        if children is None:
            children = (
                self.metrics.requests.labels(method, template, str(status)),
                self.metrics.latency.labels(method, template),
            )
            self._cache[key] = children  # bounded: route templates x methods x statuses
        return children
