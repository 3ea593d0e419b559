"""SQLite WAL checkpoints in a thread of their own, never inside a request's commit.

By default SQLite checkpoints when a commit finds the write-ahead log over 1000 pages
(``wal_autocheckpoint``): that commit copies the pages into the database file and syncs both
files. The audit writer commits on the event loop, so the checkpoint stalled every request of
the process, not only the one that crossed the threshold: with strace on the loop thread each
checkpoint was three ``fdatasync`` of 6-90 ms (2026-12-02, a box sharing its disk), about every
160 requests (an audit row writes ~6 pages: the table and its indexes). That was the one-client
p99 (docs/api.md, "The one-client tail").

The audit writer turns the automatic checkpoint off on its own kept connection
(:func:`no_autocheckpoint`) and starts a :class:`WalCheckpointer` for the file: a daemon thread
that looks at the WAL's size every :data:`LOOK_SECONDS` and, from :data:`CHECKPOINT_FRAMES`
frames (SQLite's own threshold), runs ``PRAGMA wal_checkpoint(PASSIVE)``. A passive checkpoint
takes no lock a writer needs (frames committed meanwhile are copied next time), and the sqlite3
module releases the GIL while it runs, so the loop goes on committing. After a complete
checkpoint SQLite's next writer starts the WAL again from its first frame (the file is reused,
not shrunk).

The thread uses a plain sqlite3 connection of its own, outside the engine's pool, and closes it
after any failure (a full or read-only disk: logged once per failing spell, tried again at the
next look). An earlier checkpointer (2026-12-01) borrowed pool connections; one that failed in
a checkpoint went back to the pool, and a request that took it kept failing after the storage
was restored (tests/security/test_storage_faults.py). Other connections (the CLI, inspections)
keep SQLite's automatic checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from typing import Any

from serving.periodic import PeriodicTask

log = logging.getLogger("guomen.serving.checkpoint")

#: Seconds between two looks at the WAL's size.
LOOK_SECONDS = 0.25
#: WAL frames from which the thread checkpoints (SQLite's default ``wal_autocheckpoint``).
CHECKPOINT_FRAMES = 1000
#: Bytes of the WAL header and of each frame's header (https://sqlite.org/fileformat.html).
_WAL_HEADER, _FRAME_HEADER = 32, 24


def no_autocheckpoint(dbapi_connection: Any) -> None:
    """Turn SQLite's checkpoint-on-commit off on one connection (the audit writer's)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    finally:
        cursor.close()


class WalCheckpointer:
    """Checkpoints the WAL of the SQLite file ``database`` from a daemon thread.

    Parameters
    ----------
    database
        Path of the database file.
    min_frames
        WAL frames from which a look checkpoints.
    interval
        Seconds between looks.
    """

    def __init__(
        self,
        database: str,
        min_frames: int = CHECKPOINT_FRAMES,
        interval: float = LOOK_SECONDS,
    ) -> None:
        self.database = database
        self.wal_path = f"{database}-wal"
        self.min_frames = min_frames
        self._conn: sqlite3.Connection | None = None
        self._page_size: int | None = None
        self.failing = False
        #: (busy, frames in the WAL, frames checkpointed) of the last checkpoint, and how many
        self.last: tuple[int, int, int] | None = None
        self.checkpoints = 0
        self._task = PeriodicTask("sqlite-checkpoint", interval, self.step, log)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # timeout=0: a passive checkpoint never waits, and nothing else runs here
            conn = sqlite3.connect(self.database, timeout=0, isolation_level=None,
                                   check_same_thread=False)  # fmt: skip
            self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            self._conn = conn
        return self._conn

    def wal_frames(self) -> int:
        """Frames in the WAL file (0 when there is none or the page size is not known yet)."""
        try:
            size = os.stat(self.wal_path).st_size
        except FileNotFoundError:
            return 0
        page = self._page_size or 4096
        return max(0, (size - _WAL_HEADER) // (page + _FRAME_HEADER))

    def step(self) -> tuple[int, int, int] | None:
        """One look: a checkpoint when the WAL holds ``min_frames`` frames or more."""
        if self.wal_frames() < self.min_frames:
            return None
        return self.checkpoint()

    def checkpoint(self) -> tuple[int, int, int] | None:
        """One passive checkpoint; None when it failed (its connection is closed then)."""
        try:
            row = self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self._close()
            if not self.failing:
                log.warning("WAL checkpoint of %s failed (%s); trying again at each look",
                            self.database, exc)  # fmt: skip
            self.failing = True
            return None
        if self.failing:
            log.info("WAL checkpoint of %s works again", self.database)
        self.failing = False
        self.last = (int(row[0]), int(row[1]), int(row[2]))
        self.checkpoints += 1
        return self.last

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def start(self) -> None:
        """Start the thread (no-op when it runs already)."""
        self._task.start()

    def stop(self) -> None:
        """Stop the thread (waits for a look in progress) and close its connection."""
        self._task.stop()
        self._close()
