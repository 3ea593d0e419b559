"""The registry's contract and the one loader of registered model bundles.

Training writes (``training.registry.log_and_register``), everything else reads:

- each registered version of a model comes from an MLflow run holding the bundle as the artifact
  directory ``bundle/`` (:data:`BUNDLE_ARTIFACT`);
- the version is tagged :data:`MANIFEST_TAG` (sha256 of the bundle's ``manifest.json``,
  ``features.bundle.manifest_digest``): the registry vouches for the bundle, so a bundle whose
  manifest differs is refused before anything in it is parsed;
- and :data:`BUNDLE_DIR_TAG`: the local copy training wrote, used when its manifest matches.

:func:`load_model` resolves an alias or a version number, finds or downloads the bundle, verifies
it against the pinned digest and loads it. Serving (``ModelManager``), batch rescoring, the
promotion gate and the CLI all call it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.bundle import ModelBundle, load_bundle, manifest_digest
from features.files import replace_directory

log = logging.getLogger("guomen.riskmodel.registry")

#: Version tag: sha256 of the bundle's manifest (the registry pins the bundle).
MANIFEST_TAG = "bundle_manifest_sha256"
#: Version tag: the bundle directory training wrote (absolute, or relative to the project home).
BUNDLE_DIR_TAG = "bundle_dir"
#: Run artifact directory holding the bundle.
BUNDLE_ARTIFACT = "bundle"
#: Version tag prefix of the test metrics summary (``test.precision_at_budget`` ...).
TEST_METRIC_PREFIX = "test."


class RegistryError(RuntimeError):
    """The registry cannot name a servable version (no alias, no digest tag, unreachable)."""


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, as the registry describes it."""

    name: str
    version: str
    alias: str | None
    manifest_sha256: str
    run_id: str | None = None
    source: str = ""
    bundle_dir: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str, default: str | None = None) -> str | None:
        return dict(self.tags).get(key, default)


@dataclass
class LoadedModel:
    """A verified, loaded bundle and the version it is."""

    bundle: ModelBundle
    ref: ModelRef
    path: Path


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def resolve(tracking_uri: str, model_name: str, ref: str) -> ModelRef:
    """The version ``ref`` names: a version number, or an alias (``champion``, ``challenger``).

    Raises
    ------
    RegistryError
        When the alias or version does not exist or the version carries no manifest digest.
    """
    client = _client(tracking_uri)
    try:
        if ref.isdigit():
            mv = client.get_model_version(model_name, ref)
            alias = None
        else:
            mv = client.get_model_version_by_alias(model_name, ref)
            alias = ref
    except Exception as exc:  # mlflow raises its own exception types for a missing alias
        raise RegistryError(f"cannot resolve {model_name}@{ref}: {exc}") from exc
    tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    digest = tags.get(MANIFEST_TAG)
    if not digest:
        raise RegistryError(f"{model_name} v{mv.version} has no {MANIFEST_TAG} tag: not verifiable")
    return ModelRef(
        name=model_name,
        version=str(mv.version),
        alias=alias,
        manifest_sha256=digest,
        run_id=mv.run_id,
        source=str(mv.source or ""),
        bundle_dir=tags.get(BUNDLE_DIR_TAG) or None,
        tags=tuple(sorted(tags.items())),
    )


def fetch_bundle(ref: ModelRef, *, tracking_uri: str, home: Path, cache_dir: Path) -> Path:
    """A local bundle directory whose manifest matches the pinned digest.

    The ``bundle_dir`` copy is used when present and matching; otherwise the run's ``bundle/``
    artifact is downloaded (once per version) under ``cache_dir``.
    """
    if ref.bundle_dir:
        local = Path(ref.bundle_dir)
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
        replace_directory(downloaded, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_ref(ref: ModelRef, *, tracking_uri: str, home: Path, cache_dir: Path) -> LoadedModel:
    """Fetch, verify against the pinned digest, and load the bundle of a resolved version."""
    path = fetch_bundle(ref, tracking_uri=tracking_uri, home=home, cache_dir=cache_dir)
    bundle = load_bundle(path, expected_manifest_digest=ref.manifest_sha256)
    bundle.model_name, bundle.model_version = ref.name, ref.version
    return LoadedModel(bundle, ref, path)


def load_model(
    tracking_uri: str,
    model_name: str,
    ref: str,
    *,
    home: Path | None = None,
    cache_dir: Path | None = None,
) -> LoadedModel:
    """Resolve ``ref`` (alias or version number), then fetch, verify and load its bundle.

    Parameters
    ----------
    tracking_uri
        MLflow tracking and registry URI.
    model_name, ref
        Registered model name and the alias or version number to load.
    home
        Project root, against which a relative ``bundle_dir`` tag resolves (default: the
        working directory).
    cache_dir
        Where downloaded bundles are kept (default: a fresh temporary folder).

    Raises
    ------
    RegistryError
        When the version cannot be resolved or has no pinned digest.
    features.bundle.BundleVerificationError
        When the bundle does not match the registry's digest.
    """
    resolved = resolve(tracking_uri, model_name, ref)
    cache = cache_dir if cache_dir is not None else Path(tempfile.mkdtemp(prefix="guomen-bundle-"))
    root = home if home is not None else Path.cwd()
    return load_ref(resolved, tracking_uri=tracking_uri, home=root, cache_dir=cache)


def served_entities(
    tracking_uri: str,
    model_name: str,
    attributes: dict[str, str],
    *,
    home: Path,
    cache_dir: Path,
    aliases: tuple[str, ...] = ("champion", "challenger"),
    on_unreadable: Callable[[str, Exception], None] | None = None,
) -> list[str] | None:
    """History keys a snapshot must keep for the bundles behind ``aliases``: the union of their
    chosen entity sets (a bundle without one needs the default set of ``attributes``).

    None when no alias gives a bundle (no model registered: the snapshot keeps the default
    set). ``on_unreadable(alias, error)`` hears of each alias that gives none.
    """
    from features.registry import default_entities

    union: list[str] = []
    found = False
    for alias in aliases:
        try:
            bundle = load_model(
                tracking_uri, model_name, alias, home=home, cache_dir=cache_dir
            ).bundle
        except Exception as exc:  # alias unset, no registry yet: that alias needs no keys
            if on_unreadable is not None:
                on_unreadable(alias, exc)
            continue
        found = True
        chosen = bundle.entities or list(default_entities(attributes))
        union.extend(e for e in chosen if e not in union)
    return union if found else None
