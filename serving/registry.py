"""Serving's side of the MLflow registry: resolve the alias, fetch and verify the bundle, hot reload.

Conventions (written by ``training``, read here): each version of ``Settings.model_name`` comes
from a run holding the bundle as the artifact directory ``bundle/``; the version's tags are
``bundle_manifest_sha256`` (``features.bundle.manifest_digest``) and ``bundle_path`` (or
``bundle_dir``: a local copy). Serving resolves ``Settings.model_alias`` (``champion``) to a
version, uses the local copy when its manifest matches the pinned digest, otherwise downloads the
artifact, verifies every file against the pinned manifest, and only then parses it.

A ``ModelManager`` holds the current :class:`~serving.scoring.Scorer` as a single reference.
Reloading builds (and warms) a complete new ``Scorer`` first, then swaps the reference; requests
read the reference once, so those in flight finish with the old model.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.bundle import load_bundle, manifest_digest
from serving.periodic import PeriodicTask
from serving.scoring import ModelRef, Scorer

log = logging.getLogger("guomen.serving.registry")

DIGEST_TAG = "bundle_manifest_sha256"
PATH_TAG = "bundle_path"
# training.registry writes the local copy as ``bundle_dir``; both names are read.
PATH_TAGS = (PATH_TAG, "bundle_dir")
BUNDLE_ARTIFACT = "bundle"


class RegistryError(RuntimeError):
    """The registry cannot name a servable version (no alias, no digest tag, unreachable)."""


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload check did."""

    changed: bool
    version: str | None
    previous_version: str | None
    detail: str


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def resolve(tracking_uri: str, model_name: str, alias: str) -> tuple[ModelRef, str | None]:
    """The version ``alias`` points to, and its ``bundle_path`` tag.

    Raises
    ------
    RegistryError
        When the alias does not exist or the version carries no manifest digest.
    """
    try:
        mv = _client(tracking_uri).get_model_version_by_alias(model_name, alias)
    except Exception as exc:  # mlflow raises its own exception types for a missing alias
        raise RegistryError(f"cannot resolve {model_name}@{alias}: {exc}") from exc
    tags = dict(mv.tags or {})
    digest = tags.get(DIGEST_TAG)
    if not digest:
        raise RegistryError(f"{model_name} v{mv.version} has no {DIGEST_TAG} tag: not verifiable")
    ref = ModelRef(
        name=model_name,
        version=str(mv.version),
        alias=alias,
        manifest_sha256=digest,
        run_id=mv.run_id,
        source=str(mv.source or ""),
    )
    local = next((tags[t] for t in PATH_TAGS if tags.get(t)), None)
    return ref, local


def fetch_bundle(
    ref: ModelRef, bundle_path: str | None, *, tracking_uri: str, home: Path, cache_dir: Path
) -> Path:
    """A local bundle directory whose manifest matches the pinned digest.

    The ``bundle_path`` copy is used when present and matching; otherwise the run's ``bundle/``
    artifact is downloaded (once per version) under ``cache_dir``.
    """
    if bundle_path:
        local = Path(bundle_path)
        if not local.is_absolute():
            local = home / local
        if (local / "manifest.json").is_file() and manifest_digest(local) == ref.manifest_sha256:
            return local
        log.warning("local bundle %s missing or differs from the registry; downloading", local)
    if not ref.run_id:
        raise RegistryError(f"{ref.name} v{ref.version} has no run to download the bundle from")
    target = cache_dir / ref.name / ref.version
    if (target / "manifest.json").is_file() and manifest_digest(target) == ref.manifest_sha256:
        return target
    import mlflow.artifacts

    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=cache_dir))
    try:
        downloaded = Path(
            mlflow.artifacts.download_artifacts(
                run_id=ref.run_id,
                artifact_path=BUNDLE_ARTIFACT,
                dst_path=str(staging),
                tracking_uri=tracking_uri,
            )
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        downloaded.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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
                ref, bundle_path = resolve(self.tracking_uri, self.model_name, self.alias)
                if (
                    not force
                    and self.current is not None
                    and self.current.ref.version == ref.version
                    and self.current.ref.manifest_sha256 == ref.manifest_sha256
                ):
                    return ReloadOutcome(False, previous, previous, "unchanged")
                directory = fetch_bundle(
                    ref,
                    bundle_path,
                    tracking_uri=self.tracking_uri,
                    home=self.home,
                    cache_dir=self.cache_dir,
                )
                bundle = load_bundle(directory, expected_manifest_digest=ref.manifest_sha256)
                scorer = self.build(bundle, ref)
            # Whatever goes wrong with the new version, the current one keeps serving.
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("model reload failed: %s", self.last_error)
                return ReloadOutcome(False, previous, previous, self.last_error)
            # The swap: one reference assignment; readers never see a half-built scorer.
            self.current = scorer
            self.last_error = None
            log.info("serving %s v%s (%s)", ref.name, ref.version, directory)
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
