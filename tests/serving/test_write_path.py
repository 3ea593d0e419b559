"""The SQLite write path of the API: one writer at a time without the busy handler (the write
gate), and a sync poll that skips this worker's JSON.

Real SQLite files, real threads and real processes. The engines here get ``busy_timeout=0``:
a writer that found the database locked would fail at once with "database is locked" instead
of sleeping in SQLite's busy handler (the API's old tail), so any contention the gate does not
prevent fails the test.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from serving.audit import (
    AuditCommitter,
    AuditWriter,
    count_audit,
    inspection_results,
    record_inspection,
    score_audit,
    write_audit,
    write_gate,
)
from serving.db import create_schema, make_engine
from serving.sync import SnapshotSync

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _row(request_id: str, worker: str = "w-test", item: int = 0) -> dict[str, Any]:
    return {
        "request_id": request_id, "item": item, "created_at": NOW, "key_id": "gmk_abcdefgh",
        "declaration_id": f"D-{request_id}", "input_sha256": "a" * 64,
        "declaration_json": '{"declaration_id": "x"}', "worker_id": worker,
        "model_name": "m", "model_version": "1", "snapshot_as_of": NOW, "probability": 0.5,
        "tier": "high", "decision": "inspect", "decision_reason": "tier_high",
        "monitoring_selected": False, "warnings": [], "top_reasons": [], "data_quality": [],
    }  # fmt: skip


def _no_busy_wait_engine(path: Path) -> sa.engine.Engine:
    engine = make_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _fail_fast(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    return engine


def _write_many(path: str, prefix: str, threads: int, rows: int, errors: Any) -> None:
    engine = _no_busy_wait_engine(Path(path))
    failures: list[str] = []

    def worker(k: int) -> None:
        for i in range(rows):
            try:
                write_audit(engine, [_row(f"{prefix}-{k}-{i}")])
                if i % 10 == 0:
                    record_inspection(engine, {
                        "declaration_id": f"D-{prefix}-{k}-{i}", "inspected_at": NOW,
                        "selection": "random", "result": "conforming", "received_at": NOW,
                        "request_id": f"{prefix}-{k}-{i}", "key_id": "gmk_abcdefgh",
                    })  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - every failure is reported to the test
                failures.append(f"{type(exc).__name__}: {exc}")

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    engine.dispose()
    errors.extend(failures)


def test_concurrent_writers_never_meet_a_locked_database(tmp_path):
    path = tmp_path / "gate.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    with mp.Manager() as manager:
        errors = manager.list()
        # two processes (as two uvicorn workers) with eight writing threads each
        procs = [
            mp.get_context("spawn").Process(
                target=_write_many, args=(str(path), f"p{p}", 8, 40, errors)
            )
            for p in range(2)
        ]
        for p in procs:
            p.start()
        _write_many(str(path), "main", 8, 40, errors)  # and this process beside them
        for p in procs:
            p.join(timeout=300)
            assert p.exitcode == 0
        assert list(errors) == []
    assert count_audit(engine) == 3 * 8 * 40
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(inspection_results)).scalar_one()
    assert n == 3 * 8 * 4
    assert Path(f"{path}-write.lock").exists()
    engine.dispose()


def test_the_gate_only_orders_sqlite_files(tmp_path):
    assert write_gate(make_engine(f"sqlite:///{tmp_path / 'x.db'}")).lock_path == (
        f"{tmp_path / 'x.db'}-write.lock"
    )
    memory = write_gate(sa.create_engine("sqlite://"))
    assert memory.sqlite and memory.lock_path is None
    with memory.held():  # the thread lock alone
        pass
    other = write_gate(sa.create_engine("postgresql+psycopg://u:p@127.0.0.1:1/none"))
    assert not other.sqlite
    with other.held():  # concurrent writers are the server's business
        pass


def test_a_lock_file_that_cannot_be_made_leaves_writes_working(tmp_path, caplog):
    path = tmp_path / "ro.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    gate = write_gate(engine)
    gate.lock_path = str(tmp_path / "no-such-dir" / "x.lock")
    write_audit(engine, [_row("r1")])
    assert count_audit(engine) == 1
    assert "no write lock file" in caplog.text
    engine.dispose()


def test_the_sync_poll_does_not_read_back_this_workers_json(tmp_path, monkeypatch):
    engine = make_engine(f"sqlite:///{tmp_path / 'sync.db'}")
    create_schema(engine)
    write_audit(engine, [_row("mine", worker="me"), _row("theirs", worker="other")])
    with engine.begin() as conn:  # a row from before worker ids existed
        conn.execute(score_audit.insert().values(**{**_row("old"), "worker_id": None}))
    sync = SnapshotSync(engine, lambda: None, "me", None)
    rows = sync._pages(score_audit, [score_audit.c.declaration_json], sync.decl_cursor, None)
    assert len(rows) == 3  # the plain column reads every row's JSON ...
    sync = SnapshotSync(engine, lambda: None, "me", None)
    read: list[Any] = []

    def apply(live: Any, rows: list[Any]) -> int:
        read.extend(rows)
        return 0

    monkeypatch.setattr(sync, "_apply_declarations", apply)
    sync._sync(None, None)
    json_of = {r.worker_id: r.declaration_json for r in read}
    assert json_of == {"me": None, "other": '{"declaration_id": "x"}',
                       None: '{"declaration_id": "x"}'}  # fmt: skip
    assert sync.decl_cursor.max_id == 3  # ... and the cursor still passes this worker's rows
    engine.dispose()


def test_audit_committer_commits_at_once_or_in_groups_behind_a_held_gate(tmp_path):
    """On one event loop: with the write gate free each request commits at once; while another
    writer holds the gate (as another worker would) the requests queue and are committed in
    groups. Each returns after its own rows are stored and its ``then`` has run; a bad request
    fails alone; a closed committer refuses."""
    engine = _no_busy_wait_engine(tmp_path / "group.db")
    create_schema(engine)
    committer = AuditCommitter(AuditWriter(engine))
    transactions: list[int] = []
    write = committer.writer._write

    def counted(params: Any) -> None:
        transactions.append(len(params))
        write(params)

    committer.writer._write = counted  # type: ignore[method-assign]
    write_audit(engine, [_row("taken")])
    after_commit: list[str] = []

    async def one(request_id: str) -> str:
        def then() -> None:
            # the rows are committed when ``then`` runs: another connection reads them
            with engine.connect() as conn:
                stored = conn.execute(
                    sa.select(sa.func.count()).where(score_audit.c.request_id == request_id)
                ).scalar_one()
            after_commit.append(f"{request_id}:{stored}")

        try:
            await committer.write([_row(request_id), _row(request_id, item=1)], then=then)
        except sa.exc.IntegrityError:
            return f"{request_id}:refused"
        return f"{request_id}:stored"

    def gate_held_by_another_writer() -> tuple[threading.Event, threading.Thread]:
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with write_gate(engine).held():
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(30)
        return release, holder

    async def many(ids: list[str], behind_held_gate: bool) -> list[str]:
        if not behind_held_gate:
            return [await one(i) for i in ids]
        release, holder = gate_held_by_another_writer()
        tasks = [asyncio.create_task(one(i)) for i in ids]
        await asyncio.sleep(0.2)  # every request is queued behind the held gate
        assert not any(t.done() for t in tasks) and after_commit == []
        release.set()
        outcomes = [await t for t in tasks]
        holder.join()
        return outcomes

    free = ["f0", "f1", "f2"]
    assert asyncio.run(many(free, behind_held_gate=False)) == [f"{i}:stored" for i in free]
    assert transactions == [2, 2, 2] and after_commit == ["f0:2", "f1:2", "f2:2"]
    transactions.clear()
    after_commit.clear()

    queued = [f"g{i}" for i in range(60)]
    assert asyncio.run(many(queued, behind_held_gate=True)) == [f"{i}:stored" for i in queued]
    assert sorted(after_commit) == sorted(f"{i}:2" for i in queued)
    assert sum(transactions) == 120 and len(transactions) <= 3  # grouped
    transactions.clear()
    after_commit.clear()

    # "taken" collides with a stored row: its group fails, then each request is tried alone
    mixed = ["m0", "m1", "taken", "m2"]
    assert asyncio.run(many(mixed, behind_held_gate=True)) == [
        "m0:stored", "m1:stored", "taken:refused", "m2:stored"
    ]  # fmt: skip
    assert sorted(after_commit) == ["m0:2", "m1:2", "m2:2"]  # no ``then`` for "taken"
    assert count_audit(engine) == 1 + (3 + 60 + 3) * 2

    async def after_close() -> None:
        await committer.write([_row("late")])

    committer.close()
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(after_close())
    engine.dispose()
