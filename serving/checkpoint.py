"""SQLite WAL checkpoints in a background thread of the server, never on a request.

By default SQLite checkpoints the write-ahead log into the database file when a commit finds the
WAL over 1000 pages (``wal_autocheckpoint``): that commit copies the pages and syncs the file
(about 10-25 ms on this disk, measured with strace on the request thread), on whichever request
happens to make it. The server turns the automatic checkpoint off on its own connections and a
daemon thread looks at the WAL's size every :data:`CHECKPOINT_SECONDS` instead: from
:data:`CHECKPOINT_FRAMES` frames (SQLite's own threshold) on, it runs a PASSIVE checkpoint, which
waits for no reader or writer (frames still in use are copied at a later round), so requests
neither wait for it nor pay for it. After a complete checkpoint the next writer starts the WAL
again from its first frame (the file is reused, not shrunk), so once the file has reached the
threshold every look runs a PASSIVE checkpoint, which costs nothing when every frame is already
copied. The WAL is not cut back (``journal_size_limit``): a request whose commit has to truncate
an immutable or full WAL fails, and its connection kept failing with "disk I/O error" after the
storage was restored (tests/security/test_storage_faults.py). Other processes on the same
database (the CLI, tests) keep SQLite's automatic checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.periodic import PeriodicTask

log = logging.getLogger("guomen.serving.checkpoint")

#: Seconds between two looks at the WAL's size.
CHECKPOINT_SECONDS = 1.0
#: WAL frames from which the background thread checkpoints (SQLite's ``wal_autocheckpoint``).
CHECKPOINT_FRAMES = 1000
#: Bytes of the WAL header and of each frame's header (https://sqlite.org/fileformat.html).
_WAL_HEADER, _FRAME_HEADER = 32, 24


def _is_sqlite_file(engine: Engine) -> bool:
    database = engine.url.database or ""
    return engine.dialect.name == "sqlite" and database not in ("", ":memory:")


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on an SQLite file from a daemon thread when its
    WAL holds ``min_frames`` frames or more.

    Construct it before the engine serves requests: it turns the automatic checkpoint off on
    every connection the engine opens from then on (and drops the ones already pooled).
    """

    def __init__(
        self,
        engine: Engine,
        interval: float = CHECKPOINT_SECONDS,
        min_frames: int = CHECKPOINT_FRAMES,
    ) -> None:
        self.engine = engine
        self.min_frames = min_frames
        self.wal_path = Path(f"{Path(engine.url.database or '').expanduser().resolve()}-wal")
        self._page: int | None = None
        self.failing = False
        self.last: tuple[int, int, int] | None = None  # (busy, wal frames, frames checkpointed)
        sa.event.listen(engine, "connect", _no_autocheckpoint)
        engine.dispose()  # pooled connections were opened with the automatic checkpoint on
        self._task = PeriodicTask("sqlite-checkpoint", interval, self.step, log)

    def wal_frames(self) -> int:
        """Frames in the WAL file (0 when there is none)."""
        try:
            size = self.wal_path.stat().st_size
        except FileNotFoundError:
            return 0
        page_size = self._page_size()
        return max(0, (size - _WAL_HEADER) // (page_size + _FRAME_HEADER))

    def _page_size(self) -> int:
        if self._page is None:
            with self.engine.connect() as conn:
                self._page = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        return self._page

    def step(self) -> tuple[int, int, int] | None:
        """Checkpoint when the WAL has ``min_frames`` frames or more (the thread's step)."""
        if self.wal_frames() < self.min_frames:
            return None
        return self.checkpoint()

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
