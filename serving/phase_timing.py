"""Per-request phase timings of ``POST /v1/score``, to find where slow requests spend their time.

Off by default and then out of the hot path: :func:`mark` is one context-variable read, and the
middleware is not installed at all. With ``GUOMEN_PHASE_TIMINGS=FILE`` set, every request to a
path under ``/v1/score`` gets a record: the wall clock (``perf_counter_ns``) at each mark, the
main thread's CPU time (``thread_time_ns``) over the request, the cyclic garbage collector's
pauses during it, and the gap since the previous request ended (uvicorn reading and parsing the
next one). The records are written as JSON lines to ``FILE`` at shutdown.

A phase whose wall time is much longer than its CPU time, with no I/O in it, was waiting for the
CPU or for the GIL (another thread of this process running Python, or another process); a GC
pause inside a request shows as ``gc_ns``.
"""

from __future__ import annotations

import contextvars
import gc
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

ENV = "GUOMEN_PHASE_TIMINGS"

_current: contextvars.ContextVar[list[tuple[str, int]] | None] = contextvars.ContextVar(
    "guomen_phases", default=None
)


def mark(name: str) -> None:
    """Stamp the end of phase ``name`` on the current request's record (no-op when off)."""
    marks = _current.get()
    if marks is not None:
        marks.append((name, time.perf_counter_ns()))


class _GCClock:
    """Total nanoseconds the cyclic GC has spent, per generation (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.total_ns = 0
        self.collections = [0, 0, 0]
        self._started = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        else:
            self.total_ns += time.perf_counter_ns() - self._started
            self.collections[info["generation"]] += 1


class PhaseTimingMiddleware:
    """Pure ASGI middleware (the outermost one): opens a record per scoring request."""

    def __init__(self, app: Any, path: Path, prefix: str = "/v1/score") -> None:
        self.app = app
        self.path = Path(path)
        self.prefix = prefix
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_end = 0
        self.gc_clock = _GCClock()
        gc.callbacks.append(self.gc_clock)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._on_lifespan(send))
            return
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        t0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
        gc0, gcn0 = self.gc_clock.total_ns, sum(self.gc_clock.collections)
        marks: list[tuple[str, int]] = []
        token = _current.set(marks)
        status = 0

        async def timed_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                marks.append(("app", time.perf_counter_ns()))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            _current.reset(token)
            end = time.perf_counter_ns()
            record = {
                "start_ns": t0,
                "wall_ns": end - t0,
                "cpu_ns": time.thread_time_ns() - cpu0,
                "gc_ns": self.gc_clock.total_ns - gc0,
                "gc_collections": sum(self.gc_clock.collections) - gcn0,
                "gap_ns": t0 - self._last_end if self._last_end else None,
                "status": status,
                "marks": [(name, at - t0) for name, at in marks],
            }
            self._last_end = end
            with self._lock:
                self.records.append(record)

    def _on_lifespan(self, send: Any) -> Any:
        async def lifespan_send(message: dict) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self.dump()
            await send(message)

        return lifespan_send

    def dump(self) -> None:
        """Write the records (JSON lines; appended: several workers may share the file)."""
        with self._lock:
            records, self.records = self.records, []
        lines = "".join(json.dumps(r) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(lines)


def configured_path() -> Path | None:
    """``GUOMEN_PHASE_TIMINGS`` as a path (a worker's pid is put in for ``{pid}``), or None."""
    value = os.environ.get(ENV, "").strip()
    return Path(value.replace("{pid}", str(os.getpid()))) if value else None
