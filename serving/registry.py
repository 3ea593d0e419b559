"""Serving's side of the MLflow registry: the current model version, hot reloaded.

Resolving an alias, fetching and verifying the bundle are ``riskmodel.registry``'s (the one
loader, also used by rescoring, the promotion gate and the CLI).

A ``ModelManager`` holds the current :class:`~serving.scoring.Scorer` as a single reference.
Reloading builds (and warms) a complete new ``Scorer`` first, then swaps the reference; requests
read the reference once, so those in flight finish with the old model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskmodel.registry import ModelRef, load_ref, resolve
from serving.periodic import PeriodicTask
from serving.scoring import Scorer

log = logging.getLogger("guomen.serving.registry")


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload check did."""

    changed: bool
    version: str | None
    previous_version: str | None
    detail: str


class ModelManager:
    """Owns the current ``Scorer``; loads, verifies and swaps versions; polls the registry.

    Parameters
    ----------
    tracking_uri, model_name, alias
        Where and what to resolve.
    build
        Makes a ``Scorer`` from a verified bundle and its ``ModelRef`` (bound to the live
        snapshot and secrets by the app).
    home, cache_dir
        Project root (for relative ``bundle_path`` tags) and the download cache.
    on_swap
        Called with the new ``Scorer`` after each swap (metrics).
    """

    def __init__(
        self,
        *,
        tracking_uri: str,
        model_name: str,
        alias: str,
        build: Callable[[Any, ModelRef], Scorer],
        home: Path,
        cache_dir: Path,
        on_swap: Callable[[Scorer], None] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.alias = alias
        self.build = build
        self.home = home
        self.cache_dir = cache_dir
        self.on_swap = on_swap
        self.current: Scorer | None = None
        self.last_error: str | None = None
        self._reload_lock = threading.Lock()
        self._poller: PeriodicTask | None = None

    def check(self, force: bool = False) -> ReloadOutcome:
        """Resolve the alias; load, verify and swap in its version when it changed (or ``force``).

        On any failure the current model keeps serving and the error is returned in ``detail``.
        """
        with self._reload_lock:
            previous = self.current.ref.version if self.current is not None else None
            try:
                ref = resolve(self.tracking_uri, self.model_name, self.alias)
                if (
                    not force
                    and self.current is not None
                    and self.current.ref.version == ref.version
                    and self.current.ref.manifest_sha256 == ref.manifest_sha256
                ):
                    return ReloadOutcome(False, previous, previous, "unchanged")
                loaded = load_ref(
                    ref, tracking_uri=self.tracking_uri, home=self.home, cache_dir=self.cache_dir
                )
                scorer = self.build(loaded.bundle, ref)
            # Whatever goes wrong with the new version, the current one keeps serving.
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("model reload failed: %s", self.last_error)
                return ReloadOutcome(False, previous, previous, self.last_error)
            # The swap: one reference assignment; readers never see a half-built scorer.
            self.current = scorer
            self.last_error = None
            log.info("serving %s v%s (%s)", ref.name, ref.version, loaded.path)
            if self.on_swap is not None:
                self.on_swap(scorer)
            return ReloadOutcome(True, ref.version, previous, f"loaded version {ref.version}")

    def start_polling(self, interval: float) -> None:
        """Check the registry every ``interval`` seconds in a daemon thread."""
        if self._poller is None:
            self._poller = PeriodicTask("guomen-model-poll", interval, self.check, log)
            self._poller.start()

    def stop(self) -> None:
        """Stop the poller (waits for a reload in progress)."""
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
