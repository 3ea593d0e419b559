"""WAL checkpoints of the audit database run in their own thread, never inside the audit
writer's commit (serving.checkpoint; the one-client tail, docs/api.md). Real SQLite files."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from serving.audit import AuditWriter, count_audit
from serving.checkpoint import CHECKPOINT_FRAMES, WalCheckpointer
from serving.db import create_schema, make_engine
from tests.serving.test_write_path import _row


def _writer(path: Path) -> tuple[Any, AuditWriter]:
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    return engine, AuditWriter(engine)


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_writer_never_checkpoints_in_its_commit(tmp_path):
    engine, writer = _writer(tmp_path / "a.db")
    assert writer.checkpointer is not None
    writer.write([_row("first")])
    writer.checkpointer.stop()  # no thread: only a commit could checkpoint now
    kept = writer._connection()
    assert kept.cursor().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for i in range(400):  # several pages a row: well past SQLite's 1000-frame threshold
        writer.write([_row(f"r{i}")])
    # SQLite's own checkpoint would have copied the WAL and restarted it from its first frame
    assert writer.checkpointer.wal_frames() > CHECKPOINT_FRAMES
    assert writer.checkpointer.checkpoints == 0
    writer.close()
    assert count_audit(engine) == 401
    engine.dispose()


def test_the_thread_checkpoints_once_the_wal_is_past_its_threshold(tmp_path):
    engine, writer = _writer(tmp_path / "b.db")
    writer.write([_row("first")])
    checkpointer = writer.checkpointer
    assert checkpointer is not None
    time.sleep(0.6)  # a few looks below the threshold: nothing done
    assert checkpointer.checkpoints == 0
    checkpointer.min_frames = 1  # what a look does past the threshold, without 4 MB of rows
    _wait(lambda: checkpointer.checkpoints > 0)
    assert checkpointer.last is not None
    busy, frames, done = checkpointer.last
    assert busy == 0 and frames == done > 0
    # every frame is in the database file: another connection reads the row from it
    writer.write([_row("second")])
    writer.close()
    assert count_audit(engine) == 2
    engine.dispose()


def test_a_failed_checkpoint_is_retried_on_a_fresh_connection(tmp_path):
    missing = tmp_path / "not-yet" / "c.db"
    checkpointer = WalCheckpointer(str(missing), min_frames=1)
    assert checkpointer.checkpoint() is None and checkpointer.failing
    missing.parent.mkdir()
    conn = sqlite3.connect(missing)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    result = checkpointer.checkpoint()
    assert result is not None and not checkpointer.failing
    assert result[0] == 0 and result[1] == result[2] > 0
    checkpointer.stop()
    conn.close()
