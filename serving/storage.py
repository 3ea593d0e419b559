"""Is the database writable? A cheap write probe for readiness.

Reading works on a full disk or a read-only file; writing does not, and the API cannot record
an audit row or an inspection result without it. :class:`StorageProbe` writes one row of its own
table (an ``UPDATE`` of a single row: one page) at most once per ``ttl`` seconds and caches the
answer, so ``/readyz`` polled by a load balancer costs no write per request. When storage comes
back the next probe after the ``ttl`` says so: nothing needs a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.db import UTCDateTime, metadata, utcnow

log = logging.getLogger("guomen.serving.storage")

storage_probe = sa.Table(
    "storage_probe",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("probed_at", UTCDateTime(), nullable=False),
)

# What a failed write raises: SQLAlchemy wraps the driver's errors; the OS may refuse first.
STORAGE_ERRORS = (sa.exc.SQLAlchemyError, OSError)


@dataclass(frozen=True)
class ProbeResult:
    writable: bool
    detail: str | None


class StorageProbe:
    """Writes the probe row at most once per ``ttl`` seconds; thread-safe."""

    def __init__(self, engine: Engine, ttl: float = 1.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._result = ProbeResult(True, None)

    def check(self) -> ProbeResult:
        """The latest answer, probing again when it is older than ``ttl``."""
        with self._lock:
            if time.monotonic() - self._checked < self.ttl:
                return self._result
            self._result = self._probe()
            self._checked = time.monotonic()
            return self._result

    def _probe(self) -> ProbeResult:
        try:
            with self.engine.begin() as conn:
                now = utcnow()
                done = conn.execute(
                    storage_probe.update().where(storage_probe.c.id == 1).values(probed_at=now)
                )
                if done.rowcount == 0:
                    conn.execute(storage_probe.insert().values(id=1, probed_at=now))
        except sa.exc.IntegrityError:  # another worker inserted the row first: it is writable
            return ProbeResult(True, None)
        except STORAGE_ERRORS as exc:
            reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
            if self._result.writable:
                log.error("database not writable: %s", reason)
            return ProbeResult(False, f"database not writable: {reason}")
        if not self._result.writable:
            log.warning("database writable again")
        return ProbeResult(True, None)
