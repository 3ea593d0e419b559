"""``POST /v1/inspections``: inspection results come back, are stored and update the snapshot.

Stored in ``inspection_results`` (see :mod:`serving.audit`); exported as a contract
``inspections`` CSV with :func:`serving.audit.export_inspections_csv` for the next ingest and
training. The live snapshot counts the result at once, so the enterprise's next declaration is
scored with it; the other workers apply the stored row within ``Settings.snapshot_sync_seconds``
(:mod:`serving.sync`).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from serving.audit import DuplicateInspection, record_inspection
from serving.auth import InspectorKey
from serving.db import utcnow
from serving.schemas import ERROR_RESPONSES, ErrorBody, InspectionIn, InspectionStored
from serving.storage import STORAGE_ERRORS

log = logging.getLogger("guomen.serving.inspections")

router = APIRouter(prefix="/v1", tags=["inspections"])


@router.post(
    "/inspections",
    status_code=status.HTTP_201_CREATED,
    response_model=InspectionStored,
    responses={
        **ERROR_RESPONSES,
        409: {"model": ErrorBody, "description": "a result for this declaration is stored"},
        503: {"model": ErrorBody, "description": "the database is not writable; not stored"},
    },
)
def record(request: Request, inspection: InspectionIn, key: InspectorKey) -> dict[str, Any]:
    """Record an inspection result (contract ``inspections`` fields)."""
    request_id = uuid.uuid4().hex
    received_at = utcnow()
    row = inspection.model_dump()
    data_quality = [x.model_dump(mode="json") for x in inspection.data_quality]
    try:
        record_inspection(
            request.app.state.engine,
            {
                **row,
                "received_at": received_at,
                "request_id": request_id,
                "key_id": key.key_id,
                # the other workers apply rows not written by themselves (serving.sync)
                "worker_id": request.app.state.worker_id,
                "data_quality": data_quality,
            },
        )
    except DuplicateInspection as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"a result for declaration {inspection.declaration_id!r} is already stored",
        ) from exc
    except STORAGE_ERRORS as exc:
        # Not stored, so not acknowledged: the caller retries once storage is back.
        log.error("inspection %s not stored: %s", request_id, type(exc).__name__)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "storage unavailable; the result was not stored"
        ) from exc
    updated = False
    live = request.app.state.live
    if live is not None:
        try:
            updated = live.add_inspection(row)
        except (KeyError, ValueError) as exc:
            # Stored (it feeds the next training) but the snapshot cannot place it: its
            # declaration may have been scored by another worker and not replayed here yet.
            log.info(
                "inspection %s not applied to the snapshot: %s", inspection.declaration_id, exc
            )
            request.app.state.sync.defer_inspection(row)
    return {
        "request_id": request_id,
        "declaration_id": inspection.declaration_id,
        "stored": True,
        "snapshot_updated": updated,
        "received_at": received_at,
        "data_quality": data_quality,
    }
