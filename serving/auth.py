"""API keys with roles: creation, lookup, revocation and the ``require_role`` dependency.

A key is ``gmk_`` followed by 32 random bytes (URL-safe base64). Only its sha256 is stored: the
key has 256 bits of entropy, so a fast hash cannot be brute-forced and a slow KDF would only add
latency to every request. The first 12 characters (``gmk_`` + 8) are the *key id*, stored in
clear and written to the audit log; the key itself is never stored or logged.

Roles: ``inspector`` (score, record results), ``committee`` (read the model card, warnings,
profiles; approve), ``admin`` (reload, keys; passes every check).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import anyio.to_thread
import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader
from sqlalchemy.engine import Engine

from features.files import write_private_text
from serving.db import UTCDateTime, metadata, utcnow

ROLES = ("inspector", "committee", "admin")
Role = Literal["inspector", "committee", "admin"]
KEY_PREFIX = "gmk_"
KEY_ID_LENGTH = len(KEY_PREFIX) + 8
HEADER_NAME = "X-API-Key"

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

# Committee page sessions (``serving.sessions``): a session is a credential derived from a key,
# so it lives beside the keys and a revocation ends it in the same transaction.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("session_sha256", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=False, index=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("end_reason", sa.String(16), nullable=True),
)


@dataclass(frozen=True)
class ApiKey:
    """A stored key's public record (never the key itself)."""

    key_id: str
    role: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(engine: Engine, role: str, name: str | None = None) -> tuple[str, ApiKey]:
    """Create a key with ``role``; return the key (shown once) and its stored record."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(key_id=key[:KEY_ID_LENGTH], role=role, name=name, created_at=utcnow())
    with engine.begin() as conn:
        conn.execute(
            api_keys.insert().values(
                key_id=record.key_id,
                key_sha256=_hash(key),
                role=role,
                name=name,
                created_at=record.created_at,
            )
        )
    return key, record


def write_key_file(path: Path, keys: Mapping[str, str]) -> None:
    """Write ``{role: key}`` as ``ROLE_KEY=key`` lines (``set -a; source`` reads them), readable
    by the owner only (mode 600, atomically)."""
    write_private_text(path, "".join(f"{role.upper()}_KEY={key}\n" for role, key in keys.items()))


def list_keys(engine: Engine) -> list[ApiKey]:
    """Every key record, oldest first (revoked ones included)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                api_keys.c.key_id,
                api_keys.c.role,
                api_keys.c.name,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            ).order_by(api_keys.c.created_at, api_keys.c.key_id)
        ).all()
    return [ApiKey(*row) for row in rows]


def revoke_key(engine: Engine, key_id: str) -> bool:
    """Revoke a key by id and end its committee sessions; False when no active key has that
    id."""
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            api_keys.update()
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        conn.execute(
            web_sessions.update()
            .where(web_sessions.c.key_id == key_id, web_sessions.c.ended_at.is_(None))
            .values(ended_at=now, end_reason="revoked")
        )
    return result.rowcount == 1


class KeyStore:
    """Looks keys up by id and compares hashes in constant time; caches answers briefly.

    The cache spares a DB round trip per request; a revocation reaches other processes within
    ``cache_seconds`` (immediately in the process that revoked it).
    """

    def __init__(self, engine: Engine, cache_seconds: float = 5.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def well_formed(key: str) -> bool:
        """Whether ``key`` has the shape of a key (anything else is refused without a lookup)."""
        return key.startswith(KEY_PREFIX) and KEY_ID_LENGTH + 16 <= len(key) <= 128

    def cached(self, key: str) -> tuple[bool, ApiKey | None]:
        """``(hit, record)`` from the in-memory cache only (no I/O: safe on the event loop)."""
        if not self.well_formed(key):
            return True, None
        cached = self._cache.get(_hash(key))
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return True, cached[1]
        return False, None

    def authenticate(self, key: str) -> ApiKey | None:
        """The active key record for ``key``, or None."""
        if not self.well_formed(key):
            return None
        digest = _hash(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    api_keys.c.key_sha256,
                    api_keys.c.key_id,
                    api_keys.c.role,
                    api_keys.c.name,
                    api_keys.c.created_at,
                ).where(api_keys.c.key_id == key[:KEY_ID_LENGTH], api_keys.c.revoked_at.is_(None))
            ).first()
        record = None
        if row is not None and hmac.compare_digest(row.key_sha256, digest):
            record = ApiKey(row.key_id, row.role, row.name, row.created_at)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, record)
        return record

    def forget(self) -> None:
        """Drop the cache (after a revocation in this process)."""
        with self._lock:
            self._cache.clear()


_api_key_header = APIKeyHeader(name=HEADER_NAME, auto_error=False, description="API key")


def allowed_roles(*roles: str) -> frozenset[str]:
    """The roles that pass a check for ``roles``: those and admin."""
    return frozenset(roles) | {"admin"}


def granted_from_cache(request: Request, allowed: frozenset[str]) -> ApiKey | None:
    """The request's key record when the key cache alone grants one of ``allowed`` (no I/O).

    None for anything else (no key, an unknown, uncached, revoked or malformed key, a role not
    allowed): the caller then runs :func:`require_role`'s dependency, which gives the 401 or
    403 (or looks an uncached key up). A fast path for routes that skip FastAPI's dependency
    solving (``serving.routes.score``); what it accepts, the dependency accepts too.
    """
    key = request.headers.get(HEADER_NAME)
    if not key:
        return None
    store: KeyStore = request.app.state.keys
    hit, record = store.cached(key)
    if not hit or record is None or record.role not in allowed:
        return None
    request.state.key_id = record.key_id
    return record


def require_role(*roles: str) -> Callable[..., Awaitable[ApiKey]]:
    """FastAPI dependency: a valid key (401 otherwise) whose role is in ``roles`` or is admin
    (403 otherwise). Returns the key's record."""
    allowed = allowed_roles(*roles)

    async def dependency(
        request: Request, key: Annotated[str | None, Depends(_api_key_header)]
    ) -> ApiKey:
        # async: a cache hit is answered on the event loop (no thread-pool hop); only a miss,
        # which reads the database, goes to a worker thread.
        if not key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=f"missing API key (header {HEADER_NAME})",
                headers={"WWW-Authenticate": "APIKey"},
            )
        store: KeyStore = request.app.state.keys
        hit, record = store.cached(key)
        if not hit:
            record = await anyio.to_thread.run_sync(store.authenticate, key)
        if record is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="invalid or revoked API key",
                headers={"WWW-Authenticate": "APIKey"},
            )
        if record.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {record.role!r} may not do this (needs {' or '.join(sorted(allowed))})",
            )
        request.state.key_id = record.key_id
        return record

    return dependency


InspectorKey = Annotated[ApiKey, Depends(require_role("inspector"))]
CommitteeKey = Annotated[ApiKey, Depends(require_role("committee"))]
AdminKey = Annotated[ApiKey, Depends(require_role())]
