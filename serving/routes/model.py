"""``GET /v1/model`` (the model card) and ``POST /v1/admin/reload``."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request

from serving.auth import AdminKey, CommitteeKey
from serving.routes.score import RESPONSES, CurrentScorer
from serving.schemas import ModelCard, ReloadResult

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelCard, responses=RESPONSES)
def model_card(key: CommitteeKey, scorer: CurrentScorer) -> dict[str, Any]:
    """Version, alias, evaluation metrics at budgets, tier thresholds and features."""
    bundle = scorer.bundle
    return {
        "name": scorer.ref.name,
        "version": scorer.ref.version,
        "alias": scorer.ref.alias,
        "bundle_manifest_sha256": scorer.ref.manifest_sha256,
        "created_at": bundle.created_at,
        "loaded_at": scorer.loaded_at,
        "training_fingerprint": bundle.fingerprint,
        "explainer": scorer.explainer_name,
        "calibration": {"a": scorer.bundle.calibration.a, "b": scorer.bundle.calibration.b},
        "policy": scorer.policy.to_dict(),
        "metrics": bundle.metrics,
        "features": [
            {"name": n, "description_zh": zh, "description_en": en}
            for n, (zh, en) in zip(scorer.feature_names, scorer.descriptions, strict=True)
        ],
        "snapshot_as_of": scorer.live.as_of,
    }


@router.post("/admin/reload", response_model=ReloadResult, responses=RESPONSES)
async def reload(request: Request, key: AdminKey) -> dict[str, Any]:
    """Resolve the alias now and swap in its version if it changed (verified first)."""
    manager = request.app.state.models
    outcome = await anyio.to_thread.run_sync(manager.check)
    metrics = request.app.state.metrics
    metrics.reloads.labels("loaded" if outcome.changed else "unchanged_or_failed").inc()
    return {
        "changed": outcome.changed,
        "version": outcome.version,
        "previous_version": outcome.previous_version,
        "detail": outcome.detail,
    }
