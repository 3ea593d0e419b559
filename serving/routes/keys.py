"""API key administration (admin): create, list, revoke."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Path, Request, status

from serving.auth import AdminKey, create_key, list_keys, revoke_key
from serving.schemas import ERROR_RESPONSES, ErrorBody, KeyCreate, KeyCreated, KeyInfo

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, responses=ERROR_RESPONSES
)
def create(request: Request, body: KeyCreate, key: AdminKey) -> dict[str, Any]:
    """Create a key; the response is the only time the key is shown."""
    secret, record = create_key(request.app.state.engine, body.role, body.name)
    return {**record.__dict__, "key": secret}


@router.get("", response_model=list[KeyInfo], responses=ERROR_RESPONSES)
def list_(request: Request, key: AdminKey) -> list[dict[str, Any]]:
    """Every key's id, role, name and dates (never the key)."""
    return [k.__dict__ for k in list_keys(request.app.state.engine)]


@router.delete(
    "/{key_id}",
    response_model=KeyInfo,
    responses={**ERROR_RESPONSES, 404: {"model": ErrorBody, "description": "no such active key"}},
)
def revoke(request: Request, key: AdminKey, key_id: str = Path(max_length=32)) -> dict[str, Any]:
    """Revoke a key by its id (effective at once in this process)."""
    engine = request.app.state.engine
    if not revoke_key(engine, key_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no active key {key_id!r}")
    request.app.state.keys.forget()
    return next(k.__dict__ for k in list_keys(engine) if k.key_id == key_id)
