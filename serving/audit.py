"""Durable records of the API: the scoring audit log and the inspection results that come back.

``score_audit``: one row per scored declaration, written in the request's own transaction before
the response is sent (a batch is one transaction), so a successful response implies stored rows.

``inspection_results``: inspection outcomes in contract fields, exportable as a contract
``inspections`` CSV for the next ``guomen ingest`` (:func:`export_inspections_csv`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import fcntl
import hashlib
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from features.contract import DECLARATIONS, INSPECTIONS
from serving.checkpoint import WalCheckpointer, no_autocheckpoint
from serving.db import UTCDateTime, metadata
from serving.phase_timing import mark

log = logging.getLogger("guomen.serving.audit")
Made = TypeVar("Made")

score_audit = sa.Table(
    "score_audit",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("item", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("declaration_id", sa.String(128), nullable=False, index=True),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("snapshot_as_of", UTCDateTime(), nullable=True),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("decision_reason", sa.String(64), nullable=False),
    sa.Column("monitoring_selected", sa.Boolean, nullable=False),
    sa.Column("warnings", sa.JSON, nullable=False),
    sa.Column("top_reasons", sa.JSON, nullable=False),
    # Replay by the other workers (serving.sync): the canonical input JSON that
    # ``input_sha256`` hashes, and the writing process (null in rows from before them).
    sa.Column("declaration_json", sa.Text, nullable=True),
    sa.Column("worker_id", sa.String(32), nullable=True),
    # Optional values read as missing (contract 1.1): [{field, reason, raw}], [] when none;
    # null in rows from before contract 1.1.
    sa.Column("data_quality", sa.JSON, nullable=True),
    sa.UniqueConstraint("request_id", "item", name="uq_score_audit_request_item"),
)

inspection_results = sa.Table(
    "inspection_results",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("declaration_id", sa.String(128), nullable=False, unique=True),
    sa.Column("inspected_at", UTCDateTime(), nullable=False),
    sa.Column("selection", sa.String(16), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("hazard_type", sa.String(32), nullable=True),
    sa.Column("severity", sa.String(16), nullable=True),
    sa.Column("disposal", sa.String(16), nullable=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("worker_id", sa.String(32), nullable=True),
    sa.Column("data_quality", sa.JSON, nullable=True),  # as in score_audit
)


def canonical_json(payload: Mapping[str, Any]) -> str:
    """The canonical JSON text of a validated request item (what ``input_sha256`` hashes).

    Canonical: keys sorted, no whitespace, datetimes as ISO-8601 in UTC (the API normalises
    ``declared_at`` to UTC before hashing), so the same declaration gives the same text
    whatever offset or key order it was sent with.
    """
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    """sha256 hex digest of ``text`` in UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_sha256(payload: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a validated request item (see :func:`canonical_json`)."""
    return sha256_text(canonical_json(payload))


class WriteGate:
    """One writer at a time on an SQLite database, woken as soon as the previous one is done.

    SQLite takes one writer at a time; a connection that finds the database locked sleeps in
    SQLite's busy handler (1, 2, 5, 10, 15, 20, 25, ... ms, polling again after each sleep).
    With eight request threads committing audit rows, those sleeps were the API's tail: p99
    in the hundreds of ms while the median was a few ms. The gate queues the writers instead:
    a ``threading.Lock`` between the threads of this process, then an exclusive ``flock`` on
    ``<database>-write.lock`` between the processes (uvicorn workers, the CLI); both wake the
    next writer when the lock is released, so the busy handler is never reached. Other
    backends (PostgreSQL takes concurrent writers) and in-memory databases get only the
    thread lock, or none.
    """

    def __init__(self, engine: Engine) -> None:
        url = engine.url
        self.sqlite = url.get_backend_name() == "sqlite"
        database = url.database or ""
        self.lock_path: str | None = None
        if self.sqlite and database and database != ":memory:" and not database.startswith("file:"):
            self.lock_path = f"{os.path.abspath(os.path.expanduser(database))}-write.lock"
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._fd_failed = False

    def _file(self) -> int | None:
        """The lock file, opened once per process (None when it cannot be: then the thread lock
        alone orders this process's writers, and SQLite's busy handler the processes)."""
        if self._fd is None and self.lock_path is not None and not self._fd_failed:
            try:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._fd_failed = True
                log.warning("no write lock file %s (%s); SQLite's busy handler orders the "
                            "processes' writes", self.lock_path, type(exc).__name__)  # fmt: skip
        return self._fd

    @contextlib.contextmanager
    def held_if_free(self) -> Iterator[bool]:
        """Hold the gate if nobody holds it now (yields True), else yield False at once."""
        if not self.sqlite:
            yield True
            return
        if not self._thread_lock.acquire(blocking=False):
            yield False
            return
        try:
            fd = self._file()
            if fd is None:
                yield True
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the gate for one transaction (a no-op on backends with concurrent writers)."""
        if not self.sqlite:
            yield
            return
        with self._thread_lock:  # first: flock does not order the threads of one process
            fd = self._file()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks without the GIL; woken on release
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


class _PerEngine(Generic[Made]):
    """One ``make(engine)`` per engine and process, made on first use by one thread."""

    def __init__(self, make: Callable[[Engine], Made]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[Engine, Made] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def made(self, engine: Engine) -> Made | None:
        """The object made for ``engine``, or None when none was made yet."""
        return self._made.get(engine)

    def __call__(self, engine: Engine) -> Made:
        made = self._made.get(engine)
        if made is None:
            with self._lock:  # checked again: another thread may have made it meanwhile
                made = self._made.get(engine)
                if made is None:
                    made = self._made[engine] = self._make(engine)
        return made


_gates = _PerEngine(WriteGate)


def write_gate(engine: Engine) -> WriteGate:
    """The engine's :class:`WriteGate` (one per engine and process)."""
    return _gates(engine)


class AuditWriter:
    """Inserts ``score_audit`` rows with one INSERT compiled once for the engine's dialect.

    The statement is parameterised (the dialect's own paramstyle and bind casts); values go
    through the same bind processors SQLAlchemy would apply (UTC timestamps, JSON, booleans), so
    the stored rows are identical to a Core ``insert``. It runs on a pooled DBAPI connection:
    one checkout, one ``execute``, one ``commit`` per request, without Core's per-call statement
    and result machinery (most of the cost of an audited request once scoring is fast).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.gate = write_gate(engine)
        dialect = engine.dialect
        keys = [c.key for c in score_audit.c if c.key != "id"]
        # inline: no RETURNING of the generated id (nothing reads it)
        compiled = score_audit.insert().inline().compile(dialect=dialect, column_keys=keys)
        self.sql = str(compiled)
        names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
        if sorted(names) != sorted(keys):
            raise RuntimeError(f"unexpected bind names in the audit insert: {names}")
        self.positional = bool(compiled.positional)
        self.names = names
        # Nullable columns may be left out of a row (stored as NULL, as a Core insert would).
        self.optional = [score_audit.c[n].nullable for n in names]
        self.processors = [
            compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names
        ]
        self._keep = self.gate.lock_path is not None
        self._kept: Any = None
        # An SQLite file: checkpoints in a thread, never in a commit on the loop (serving.checkpoint)
        self.checkpointer = (
            WalCheckpointer(self.gate.lock_path.removesuffix("-write.lock"))
            if self.gate.lock_path is not None
            else None
        )

    def _params(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = []
        for n, p, optional in zip(self.names, self.processors, self.optional, strict=True):
            v = row.get(n) if optional else row[n]
            values.append(p(v) if p is not None else v)
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...] | dict[str, Any]]:
        """The rows as bound parameters of the insert (in the caller's thread: pure CPU)."""
        return [self._params(r) for r in rows]

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` in one transaction; raises (nothing stored) if it cannot commit."""
        if rows:
            self.write_params(self.params(rows))

    def write_params(self, params: Sequence[tuple[Any, ...] | dict[str, Any]]) -> None:
        """Insert rows made by :meth:`params` in one transaction, under the write gate."""
        with self.gate.held():
            self._write(params)

    def write_params_if_free(self, params: Sequence[tuple[Any, ...] | dict[str, Any]]) -> bool:
        """:meth:`write_params` if the write gate can be had without waiting; False (nothing
        done) if it cannot. Raises what the commit raised."""
        with self.gate.held_if_free() as free:
            if free:
                self._write(params)
        return free

    def _connection(self) -> Any:
        """A pooled DBAPI connection; on an SQLite file the gate's thread lock makes the writes
        of this process one at a time, so one connection is kept for all of them (no pool
        checkout and reset-on-return per request); it is dropped after any failure."""
        if not self._keep:
            return self.engine.raw_connection()
        if self._kept is None:
            kept = self.engine.raw_connection()
            if self.checkpointer is not None:
                no_autocheckpoint(kept)
                self.checkpointer.start()
            self._kept = kept
        return self._kept

    def close(self) -> None:
        """Give the kept connection back (at shutdown)."""
        with self.gate.held():
            kept, self._kept = self._kept, None
        if self.checkpointer is not None:
            self.checkpointer.stop()
        if kept is not None:
            with contextlib.suppress(Exception):
                kept.close()

    def _write(self, params: Sequence[tuple[Any, ...] | dict[str, Any]]) -> None:
        conn = self._connection()
        failed = True
        try:
            cursor = conn.cursor()
            try:
                if len(params) == 1:
                    cursor.execute(self.sql, params[0])
                else:
                    # All tuples or all dicts: ``self.positional`` decides for every row.
                    rows_params = cast(
                        "Sequence[Sequence[Any]] | Sequence[Mapping[str, Any]]", params
                    )
                    cursor.executemany(self.sql, rows_params)
            finally:
                cursor.close()
            conn.commit()
            failed = False
        except BaseException as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            dbapi_error = self.engine.dialect.loaded_dbapi.Error
            if isinstance(exc, dbapi_error):
                # the same exception classes as through Core (e.g. sa.exc.IntegrityError)
                raise sa.exc.DBAPIError.instance(
                    self.sql, params, exc, dbapi_error, dialect=self.engine.dialect
                ) from exc
            raise
        finally:
            if not self._keep:
                conn.close()  # back to the pool
            elif failed:
                # Back to the pool (rolled back), another one next time. Closed outright after
                # a storage fault, it left the next writer failing once after the storage came
                # back (tests/security/test_storage_faults.py).
                self._kept = None
                with contextlib.suppress(Exception):
                    conn.close()


_writers = _PerEngine(AuditWriter)


def audit_writer(engine: Engine) -> AuditWriter:
    """The engine's :class:`AuditWriter` (compiled on first use, then shared by its threads)."""
    return _writers(engine)


def write_audit(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert audit rows in one transaction (raises if it cannot commit)."""
    audit_writer(engine).write(rows)


class _Waiting:
    """One request's rows in the committer's queue, and how to tell it the outcome."""

    __slots__ = ("future", "loop", "params", "then")

    def __init__(
        self,
        params: list[tuple[Any, ...] | dict[str, Any]],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[None],
        then: Callable[[], object] | None,
    ) -> None:
        self.params = params
        self.loop = loop
        self.future = future
        self.then = then


class AuditCommitter:
    """The audit writes of requests served on the event loop, never waiting on the loop.

    On SQLite, when the write gate is free (nothing queued, no other writer of this process or
    another holds it), a request's rows are committed at once on the loop: on one kept
    connection that is a fraction of a millisecond, cheaper than any hand-over to a thread
    (measured: docs/api.md, "Performance"). When the gate is taken (another worker process is
    committing, or a group is in progress here), and always on a server database (PostgreSQL),
    the rows are queued instead and the loop goes on serving: one daemon thread takes every
    request queued meanwhile, inserts all their rows in one transaction under the gate (group
    commit), and only then answers each of them (one wake-up of each event loop per group). Either way an answer exists only after its rows are
    committed, so a crash can lose unanswered requests only. When a group's transaction fails,
    each of its requests is tried again alone, so a bad request fails by itself.
    """

    def __init__(self, writer: AuditWriter, max_rows: int = 512) -> None:
        self.writer = writer
        self.max_rows = max_rows
        self._queue: collections.deque[_Waiting] = collections.deque()
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = False  # the thread holds a group (queued or committing)
        # A commit on the loop only on SQLite (a local file, a fraction of a millisecond); on a
        # server database the commit is a network round trip, so the thread always does it.
        self._inline = writer.gate.sqlite

    async def write(
        self, rows: Sequence[Mapping[str, Any]], then: Callable[[], object] | None = None
    ) -> None:
        """Store ``rows`` (one transaction, or the next group's); returns once committed.

        ``then`` runs on this event loop right after the commit and before this call returns,
        even when the awaiting task was cancelled meanwhile (e.g. the snapshot update of a
        request whose rows are stored). Raises what the commit raised (nothing stored).
        """
        if not rows:
            return
        params = self.writer.params(rows)
        if self._closed:
            raise RuntimeError("the audit committer is closed")
        if (
            self._inline
            and not self._queue
            and not self._busy
            and self.writer.write_params_if_free(params)
        ):
            _after_commit(then)
            return
        mark("queued")  # phase timings: this request's commit is the committer thread's
        loop = asyncio.get_running_loop()
        waiting = _Waiting(params, loop, loop.create_future(), then)
        with self._wake:
            if self._closed:
                raise RuntimeError("the audit committer is closed")
            self._queue.append(waiting)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="audit-committer", daemon=True
                )
                self._thread.start()
            self._wake.notify()
        await waiting.future

    def close(self) -> None:
        """Commit what is queued, then stop the thread (a later :meth:`write` raises)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=60)

    def _take(self) -> list[_Waiting] | None:
        with self._wake:
            self._busy = False
            while not self._queue:
                if self._closed:
                    return None
                self._wake.wait()
            self._busy = True
            group = [self._queue.popleft()]
            rows = len(group[0].params)
            while self._queue and rows + len(self._queue[0].params) <= self.max_rows:
                rows += len(self._queue[0].params)
                group.append(self._queue.popleft())
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            outcomes = self._commit(group)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Waiting, Any]]] = {}
            for w, exc in outcomes:
                by_loop.setdefault(w.loop, []).append((w, exc))
            for loop, settled in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, settled)

    def _commit(self, group: list[_Waiting]) -> list[tuple[_Waiting, BaseException | None]]:
        try:
            self.writer.write_params([p for w in group for p in w.params])
            return [(w, None) for w in group]
        except BaseException as exc:  # noqa: BLE001 - each waiting request is told
            if len(group) == 1:
                return [(group[0], exc)]
            return [(w, self._alone(w)) for w in group]

    def _alone(self, waiting: _Waiting) -> BaseException | None:
        try:
            self.writer.write_params(waiting.params)
        except BaseException as exc:  # noqa: BLE001 - told to its request
            return exc
        return None


def _after_commit(then: Callable[[], object] | None) -> None:
    """A request's step after its rows are stored; its failure is logged, not the request's."""
    if then is not None:
        try:
            then()
        except Exception:
            log.exception("after-commit step failed (the audit rows are stored)")


def _settle(settled: Sequence[tuple[_Waiting, BaseException | None]]) -> None:
    """On the requests' event loop: run each committed request's ``then``, wake it."""
    for waiting, exc in settled:
        if exc is None:
            _after_commit(waiting.then)
        if waiting.future.done():  # cancelled while waiting
            continue
        if exc is None:
            waiting.future.set_result(None)
        else:
            waiting.future.set_exception(exc)


_committers = _PerEngine(lambda engine: AuditCommitter(audit_writer(engine)))


def audit_committer(engine: Engine) -> AuditCommitter:
    """The engine's :class:`AuditCommitter` (one thread per engine and process, started on
    first use; :meth:`AuditCommitter.close` at shutdown)."""
    return _committers(engine)


def close_audit(engine: Engine) -> None:
    """At the app's shutdown: drain and stop the engine's committer, give back the writer's
    kept connection (each only if it was ever made)."""
    committer = _committers.made(engine)
    if committer is not None:
        committer.close()
    writer = _writers.made(engine)
    if writer is not None:
        writer.close()


def count_audit(engine: Engine) -> int:
    """Number of audit rows (used by tests and the benchmark)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(score_audit)).scalar_one())


class DuplicateInspection(Exception):
    """A result for this declaration is already stored (at most one final result)."""


def record_inspection(engine: Engine, row: Mapping[str, Any]) -> None:
    """Store one inspection result; raises :class:`DuplicateInspection` for a second result."""
    try:
        with write_gate(engine).held(), engine.begin() as conn:
            conn.execute(inspection_results.insert().values(**row))
    except sa.exc.IntegrityError as exc:
        raise DuplicateInspection(str(row["declaration_id"])) from exc


def iter_inspections(engine: Engine, since: datetime | None = None) -> Iterable[dict[str, Any]]:
    """Stored inspection results in arrival order (optionally received at or after ``since``)."""
    query = sa.select(inspection_results).order_by(inspection_results.c.id)
    if since is not None:
        query = query.where(inspection_results.c.received_at >= since)
    with engine.connect() as conn:
        for row in conn.execute(query):
            yield dict(row._mapping)


def export_inspections_csv(engine: Engine, path: Path, since: datetime | None = None) -> int:
    """Write stored results as a contract ``inspections`` CSV (UTC ISO timestamps).

    The file can be given to ``guomen ingest`` with the next batch of declarations, so results
    recorded through the API feed the next training. Returns the number of rows written.
    """
    columns = INSPECTIONS.names
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in iter_inspections(engine, since):
            out = {c: row.get(c) for c in columns}
            out["inspected_at"] = row["inspected_at"].isoformat()
            # Values the API read as missing go out as sent: ingest records the same issues.
            for issue in row.get("data_quality") or ():
                if issue.get("raw") is not None and issue["field"] in out:
                    out[issue["field"]] = issue["raw"]
            writer.writerow({k: ("" if v is None else v) for k, v in out.items()})
            n += 1
    return n


def export_declarations_csv(engine: Engine, path: Path, since: datetime | None = None) -> int:
    """Write the declarations scored through the API as a contract ``declarations`` CSV.

    Each declaration is taken from its audit row's stored input (the latest row wins when a
    declaration was scored more than once); rows written before inputs were stored are skipped.
    With :func:`export_inspections_csv` it makes a folder that ``guomen ingest`` accepts, so the
    results recorded through the API reach the next training with their declarations.
    Returns the number of rows written.
    """
    columns = DECLARATIONS.names
    query = (
        sa.select(score_audit.c.declaration_id, score_audit.c.declaration_json)
        .where(score_audit.c.declaration_json.is_not(None))
        .order_by(score_audit.c.id)
    )
    if since is not None:
        query = query.where(score_audit.c.created_at >= since)
    latest: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for declaration_id, text in conn.execute(query):
            latest[str(declaration_id)] = json.loads(text)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for record in latest.values():
            writer.writerow({c: _csv_value(record.get(c)) for c in columns})
    return len(latest)


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
