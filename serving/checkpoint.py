"""SQLite WAL checkpoints in a background thread of the server, never on a request.

By default SQLite checkpoints the write-ahead log into the database file when a commit finds the
WAL over 1000 pages (``wal_autocheckpoint``): that commit copies the pages and syncs the file
(about 10-25 ms on this disk, measured with strace on the request thread), on whichever request
happens to make it. The server turns the automatic checkpoint off on its own connections and runs
a PASSIVE checkpoint every :data:`CHECKPOINT_SECONDS` in a daemon thread instead: PASSIVE waits
for no reader or writer (frames still in use are copied at a later round), so requests neither
wait for it nor pay for it, and the WAL stays at about one interval of writes. Other processes
on the same database (the CLI, tests) keep SQLite's automatic checkpoint.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.periodic import PeriodicTask

log = logging.getLogger("guomen.serving.checkpoint")

#: Seconds between two checkpoints of the server's background thread.
CHECKPOINT_SECONDS = 1.0


def _is_sqlite_file(engine: Engine) -> bool:
    database = engine.url.database or ""
    return engine.dialect.name == "sqlite" and database not in ("", ":memory:")


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` periodically on an SQLite engine.

    Construct it before the engine serves requests: it turns the automatic checkpoint off on
    every connection the engine opens from then on (and drops the ones already pooled).
    """

    def __init__(self, engine: Engine, interval: float = CHECKPOINT_SECONDS) -> None:
        self.engine = engine
        self.failing = False
        self.last: tuple[int, int, int] | None = None  # (busy, wal frames, frames checkpointed)
        sa.event.listen(engine, "connect", _no_autocheckpoint)
        engine.dispose()  # pooled connections were opened with the automatic checkpoint on
        self._task = PeriodicTask("sqlite-checkpoint", interval, self.checkpoint, log)

    def checkpoint(self) -> tuple[int, int, int] | None:
        """One PASSIVE checkpoint; None when it failed (logged once per failing spell)."""
        try:
            conn = self.engine.raw_connection()
            try:
                cursor = conn.cursor()
                row = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                cursor.close()
            finally:
                conn.close()
        except Exception as exc:  # a full or read-only disk: /readyz reports it, retry later
            if not self.failing:
                log.warning("WAL checkpoint failed (%s); retrying every %.1f s",
                            type(exc).__name__, self._task.interval)  # fmt: skip
            self.failing = True
            return None
        if self.failing:
            log.info("WAL checkpoint works again")
        self.failing = False
        self.last = (int(row[0]), int(row[1]), int(row[2]))
        return self.last

    def start(self) -> None:
        """Start the background thread."""
        self._task.start()

    def stop(self) -> None:
        """Stop the thread and checkpoint once more (waits for a round in progress)."""
        self._task.stop()
        self.checkpoint()


def background_checkpoints(engine: Engine) -> Checkpointer | None:
    """A :class:`Checkpointer` for a file SQLite database; None for other databases."""
    return Checkpointer(engine) if _is_sqlite_file(engine) else None
