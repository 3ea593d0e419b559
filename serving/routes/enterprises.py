"""Enterprise risk profiles from the nightly rescoring (``guomen rescore``), for the committee.

- ``GET /v1/enterprises?limit=&offset=&as_of=``: profiles of one run sorted by risk (rank 1 =
  highest expected nonconformity rate); the latest run unless ``as_of`` is given.
- ``GET /v1/enterprises/{enterprise_id}?as_of=``: one enterprise's profile.

Both need the ``committee`` role (``admin`` passes too). Routes are thin: they read through
``serving.rescore.db`` (the same functions the committee pages use).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParam

from serving.auth import ApiKey, require_role
from serving.deps import DbEngine
from serving.rescore.db import get_profile, list_profiles

router = APIRouter(prefix="/v1/enterprises", tags=["enterprises"])

Committee = Annotated[ApiKey, Depends(require_role("committee"))]
AsOf = Annotated[
    dt.date | None, Query(description="as-of date of the rescoring run (default: the latest)")
]


@router.get("", summary="Enterprise profiles sorted by risk")
def enterprises(
    engine: DbEngine,
    _key: Committee,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """Profiles of the latest run (or ``as_of``), riskiest first, with the total count."""
    return list_profiles(
        engine, limit=limit, offset=offset, as_of=as_of.isoformat() if as_of else None
    )


@router.get("/{enterprise_id}", summary="One enterprise's risk profile")
def enterprise(
    engine: DbEngine,
    enterprise_id: Annotated[str, PathParam(min_length=1, max_length=128)],
    _key: Committee,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """Expected nonconformity rate, tier shares, main reasons (aggregated exact SHAP), change
    since the previous run, credit tier and active warnings of one enterprise."""
    profile = get_profile(engine, enterprise_id, as_of=as_of.isoformat() if as_of else None)
    if profile is None:
        raise HTTPException(404, f"no profile for enterprise {enterprise_id!r}")
    return profile
