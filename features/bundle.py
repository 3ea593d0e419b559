"""The model bundle: everything serving needs to score, verified before anything is parsed.

A bundle is a directory written by training and loaded by serving and batch rescoring:

- ``booster.txt``   LightGBM text model (never a pickle)
- ``bundle.json``   calibration, feature specs and order, supervision policy, metrics,
                    training-data fingerprint, provenance
- ``manifest.json`` sha256 of every other file; ``load_bundle`` checks it first

Calibration is a logistic map of the raw margin, ``p = sigmoid(a * margin + b)``, so exact SHAP
values scaled by ``a`` (base value ``a * base + b``) add up to ``logit(p)`` exactly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from features.files import sha256_file

BUNDLE_FORMAT = 1
BOOSTER_FILE = "booster.txt"
META_FILE = "bundle.json"
MANIFEST_FILE = "manifest.json"


class BundleVerificationError(Exception):
    """The bundle on disk does not match its manifest (tampered, truncated or incomplete)."""


@dataclass(frozen=True)
class Calibration:
    """Platt map of the raw LightGBM margin: ``logit(p) = a * margin + b``."""

    a: float = 1.0
    b: float = 0.0

    def logit(self, margin: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(margin, dtype=np.float64) + self.b

    def probability(self, margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(margin)))


@dataclass
class ModelBundle:
    """A trained model with everything needed to score and explain it."""

    booster: lgb.Booster
    calibration: Calibration
    feature_names: list[str]
    feature_specs: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    model_name: str | None = None
    model_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    # The history keys the feature set is built from (``features.registry.feature_specs``'s
    # ``entities``): serving builds exactly these. None: the registry's default set.
    entities: list[str] | None = None
    # Code maps of the native categorical features: feature name -> values, code = position
    # (``features.categorical``); a value not listed is missing.
    categories: dict[str, list[str]] = field(default_factory=dict)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Raw margin (log-odds before calibration)."""
        return np.asarray(self.booster.predict(X, raw_score=True), dtype=np.float64)

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of a nonconformity."""
        return self.calibration.probability(self.margin(X))

    def metadata(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "calibration": {"a": self.calibration.a, "b": self.calibration.b},
            "feature_names": list(self.feature_names),
            "feature_specs": self.feature_specs,
            "policy": self.policy,
            "metrics": self.metrics,
            "fingerprint": self.fingerprint,
            "attributes": self.attributes,
            "created_at": self.created_at,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "extra": self.extra,
            "entities": self.entities,
            "categories": self.categories,
        }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _check_finite(bundle: ModelBundle) -> None:
    for name, v in (("a", bundle.calibration.a), ("b", bundle.calibration.b)):
        if not math.isfinite(v):
            raise ValueError(f"calibration {name} is not finite: {v}")
    if bundle.booster.num_feature() != len(bundle.feature_names):
        raise ValueError(
            f"booster has {bundle.booster.num_feature()} features, "
            f"bundle lists {len(bundle.feature_names)}"
        )


def save_bundle(bundle: ModelBundle, directory: Path) -> Path:
    """Write ``bundle`` to ``directory`` atomically and return the directory.

    The directory must not exist yet: bundles are immutable once written.
    """
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"bundle directory already exists: {directory}")
    _check_finite(bundle)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=directory.parent))
    try:
        (staging / BOOSTER_FILE).write_text(bundle.booster.model_to_string(), encoding="utf-8")
        (staging / META_FILE).write_text(
            json.dumps(bundle.metadata(), default=_json_default, ensure_ascii=False, indent=2),
            encoding="utf-8",
        )
        manifest = {
            "format": BUNDLE_FORMAT,
            "files": {name: sha256_file(staging / name) for name in (BOOSTER_FILE, META_FILE)},
        }
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    bundle.path = directory
    return directory


def manifest_digest(directory: Path) -> str:
    """sha256 of the manifest itself: pinned in the registry so the registry vouches for it."""
    return sha256_file(Path(directory) / MANIFEST_FILE)


def verify_bundle(directory: Path, expected_manifest_digest: str | None = None) -> dict[str, Any]:
    """Check every file against the manifest; return the manifest. Parses nothing else."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleVerificationError(f"{directory}: no {MANIFEST_FILE}")
    if (
        expected_manifest_digest is not None
        and sha256_file(manifest_path) != expected_manifest_digest
    ):
        raise BundleVerificationError(f"{directory}: manifest digest differs from the registry's")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleVerificationError(f"{directory}: unreadable manifest") from exc
    if set(files) != {BOOSTER_FILE, META_FILE}:
        raise BundleVerificationError(f"{directory}: manifest lists {sorted(files)}")
    present = {p.name for p in directory.iterdir()}
    unexpected = present - {BOOSTER_FILE, META_FILE, MANIFEST_FILE}
    if unexpected:
        raise BundleVerificationError(f"{directory}: unexpected files {sorted(unexpected)}")
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise BundleVerificationError(f"{directory}: missing {name}")
        if sha256_file(path) != expected:
            raise BundleVerificationError(f"{directory}: {name} does not match its sha256")
    return dict(manifest)


def load_bundle(directory: Path, expected_manifest_digest: str | None = None) -> ModelBundle:
    """Verify the manifest, then load the bundle. Raises ``BundleVerificationError``."""
    directory = Path(directory)
    verify_bundle(directory, expected_manifest_digest)
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleVerificationError(f"{directory}: bundle format {meta.get('format')!r}")
    booster = lgb.Booster(model_str=(directory / BOOSTER_FILE).read_text(encoding="utf-8"))
    cal = meta["calibration"]
    bundle = ModelBundle(
        booster=booster,
        calibration=Calibration(a=float(cal["a"]), b=float(cal["b"])),
        feature_names=list(meta["feature_names"]),
        feature_specs=list(meta.get("feature_specs", [])),
        policy=dict(meta.get("policy", {})),
        metrics=dict(meta.get("metrics", {})),
        fingerprint=str(meta.get("fingerprint", "")),
        attributes=dict(meta.get("attributes", {})),
        created_at=str(meta.get("created_at", "")),
        model_name=meta.get("model_name"),
        model_version=meta.get("model_version"),
        extra=dict(meta.get("extra", {})),
        path=directory,
        entities=None if meta.get("entities") is None else [str(e) for e in meta["entities"]],
        categories={
            str(k): [str(v) for v in vals] for k, vals in (meta.get("categories") or {}).items()
        },
    )
    _check_finite(bundle)
    return bundle
