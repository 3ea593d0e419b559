"""Past declarations explained as they were, never with today's snapshot.

Two sources, in this order:

1. **As answered**: a declaration scored through ``POST /v1/score`` has audit rows
   (``serving.audit.score_audit``): probability, tier, decision and its reason, the reasons the
   inspector was given, model version, snapshot time and the measures applied. They are shown
   exactly as stored.
2. **Re-explained**: any declaration of the ingested store is explained as of its own
   ``declared_at`` from its point-in-time offline features (``features.build.build_offline``,
   the path training and rescoring use) by the model in service, through the same arithmetic as
   the API and rescoring (``riskmodel.explain.calibrate``).

The offline feature rows are built once per store version and model feature list and kept on
disk as a float64 matrix (memory-mapped, so a page reads only the rows it shows): a page view
costs a lookup and the TreeSHAP of its rows, not a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from riskmodel.explain import Calibrated, calibrate
from serving.audit import score_audit

log = logging.getLogger("guomen.serving.explanations")

IDS_FILE = "declaration_ids.npy"
DECLARED_FILE = "declared_at_ns.npy"
MATRIX_FILE = "features.npy"
META_FILE = "meta.json"


def answered(engine: Engine, declaration_id: str) -> list[dict[str, Any]]:
    """The audit rows of a declaration scored through the API, newest first (empty if none)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(score_audit)
            .where(score_audit.c.declaration_id == declaration_id)
            .order_by(score_audit.c.created_at.desc(), score_audit.c.id.desc())
        ).mappings()
        out = []
        for row in rows:
            item = dict(row)
            text = item.pop("declaration_json", None)
            item["declaration"] = json.loads(text) if text else None
            out.append(item)
    return out


def store_version(
    store_root: Path, tables: dict[str, pd.DataFrame], feature_names: Sequence[str]
) -> str:
    """A digest of the store's committed batches and attributes (its manifest) and of the model's
    columns; tables handed over without a store are fingerprinted instead."""
    digest = hashlib.sha256()
    manifest_path = Path(store_root) / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        digest.update(json.dumps(manifest.get("batches", []), sort_keys=True, default=str).encode())
        digest.update(json.dumps(manifest.get("attributes", {}), sort_keys=True).encode())
    else:
        for name in sorted(tables):
            frame = tables[name]
            digest.update(f"{name}:{len(frame)}".encode())
            if len(frame):
                hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
                digest.update(hashed.tobytes())
    digest.update("\x1f".join(feature_names).encode())
    return digest.hexdigest()[:24]


@dataclass
class FeatureRows:
    """Point-in-time feature rows of every store declaration, in one model's column order."""

    version: str
    folder: Path
    ids: pd.Index
    declared_at_ns: np.ndarray  # int64 ns since the epoch, UTC
    matrix: np.ndarray  # float64, memory-mapped, (declarations, features)
    # (id() of the tables object, model columns) it was last checked against: a fast path
    checked: tuple[int, tuple[str, ...], str] = (0, (), "")
    # the tables object itself, so its id() cannot be reused by another while this is current
    tables: Any = None

    def probabilities(self, scorer: Any) -> np.ndarray:
        """Calibrated probability of every row with the serving model (no SHAP), cached on disk
        per model version and manifest."""
        ref = getattr(scorer, "ref", None)
        tag = f"{getattr(ref, 'version', 'x')}-{getattr(ref, 'manifest_sha256', '')[:12]}"
        path = self.folder / f"probability-{tag}.npy"
        if path.is_file():
            return np.load(path, allow_pickle=False)
        out = np.empty(len(self.ids), dtype=np.float64)
        for start in range(0, len(out), 200_000):
            chunk = np.ascontiguousarray(self.matrix[start : start + 200_000])
            out[start : start + len(chunk)] = scorer.bundle.probability(chunk)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, out, allow_pickle=False)
        os.replace(tmp, path)
        return out

    def lookup(self, declaration_ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The ids found (in the order asked) and their feature rows."""
        pos = self.ids.get_indexer(pd.Index(list(declaration_ids)))
        keep = pos >= 0
        found = [d for d, k in zip(declaration_ids, keep, strict=True) if k]
        return found, np.ascontiguousarray(self.matrix[pos[keep]], dtype=np.float64)


class PointInTimeFeatures:
    """Builds, caches and serves :class:`FeatureRows` per store version.

    Parameters
    ----------
    cache_root
        Folder for the cached matrices (one sub-folder per version; older ones are removed).
    """

    def __init__(self, cache_root: Path) -> None:
        self.cache_root = Path(cache_root)
        self._lock = threading.Lock()
        self._rows: FeatureRows | None = None

    def rows(
        self,
        store_root: Path,
        tables: dict[str, pd.DataFrame],
        attributes: dict[str, str] | None,
        feature_names: Sequence[str],
        entities: Sequence[str] | None = None,
        categories: dict[str, list[str]] | None = None,
    ) -> FeatureRows:
        """The rows for the store's current version (built on first use of a version), with the
        model's own history keys and category code maps (its bundle's)."""
        # Code maps change the values, not the names: they are part of the cache key.
        maps = json.dumps(categories or {}, sort_keys=True)
        checked = (id(tables), tuple(feature_names), maps)
        current = self._rows
        if current is not None and current.checked == checked:
            return current  # the same loaded tables and columns: the same version
        version = store_version(store_root, tables, [*feature_names, maps])
        if current is not None and current.version == version:
            current.checked, current.tables = checked, tables
            return current
        with self._lock:
            current = self._rows
            if current is not None and current.version == version:
                return current
            folder = self.cache_root / version
            if not (folder / META_FILE).is_file():
                self._build(folder, tables, attributes, feature_names, entities, categories)
            rows = FeatureRows(
                version,
                folder,
                pd.Index(np.load(folder / IDS_FILE, allow_pickle=False)),
                np.load(folder / DECLARED_FILE, allow_pickle=False),
                np.load(folder / MATRIX_FILE, mmap_mode="r", allow_pickle=False),
                checked,
                tables,
            )
            self._rows = rows
            self._prune(keep=version)
            return rows

    def _build(
        self,
        folder: Path,
        tables: dict[str, pd.DataFrame],
        attributes: dict[str, str] | None,
        feature_names: Sequence[str],
        entities: Sequence[str] | None = None,
        categories: dict[str, list[str]] | None = None,
    ) -> None:
        from features.build import build_offline

        log.info("building point-in-time feature rows for %s", folder.name)
        features = build_offline(
            tables,
            attributes,
            entities=None if entities is None else list(entities),
            categories=categories or None,
        )
        missing = [c for c in feature_names if c not in features.columns]
        if missing:
            raise ValueError(f"the offline features lack columns the model needs: {missing[:10]}")
        ids = features["declaration_id"].astype("str").to_numpy(dtype="U")
        declared = pd.DatetimeIndex(features["declared_at"]).as_unit("ns").asi8
        matrix = features[list(feature_names)].to_numpy(dtype=np.float64, na_value=np.nan)
        del features
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
        try:
            np.save(staging / IDS_FILE, ids, allow_pickle=False)
            np.save(staging / DECLARED_FILE, declared, allow_pickle=False)
            np.save(staging / MATRIX_FILE, matrix, allow_pickle=False)
            meta = {"rows": len(ids), "features": list(feature_names)}
            (staging / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
            os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _prune(self, keep: str) -> None:
        for old in self.cache_root.iterdir():
            if old.is_dir() and old.name != keep and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)


def explain(scorer: Any, X: np.ndarray) -> Calibrated:
    """Calibrated probability and exact SHAP of feature rows with the serving model's explainer
    (the API's and rescoring's arithmetic)."""
    if not len(X):
        raise ValueError("no rows to explain")
    return calibrate(scorer.explainer.contributions(X), scorer.bundle.calibration)
