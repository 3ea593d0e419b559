"""Durable records of the API: the scoring audit log and the inspection results that come back.

``score_audit``: one row per scored declaration, written in the request's own transaction before
the response is sent (a batch is one transaction), so a successful response implies stored rows.

``inspection_results``: inspection outcomes in contract fields, exportable as a contract
``inspections`` CSV for the next ``guomen ingest`` (:func:`export_inspections_csv`).
"""

from __future__ import annotations

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
from serving.db import UTCDateTime, metadata

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

    def _params(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = []
        for n, p, optional in zip(self.names, self.processors, self.optional, strict=True):
            v = row.get(n) if optional else row[n]
            values.append(p(v) if p is not None else v)
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` in one transaction; raises (nothing stored) if it cannot commit."""
        if not rows:
            return
        params = [self._params(r) for r in rows]
        with self.gate.held():
            self._write(params)

    def _write(self, params: Sequence[tuple[Any, ...] | dict[str, Any]]) -> None:
        conn = self.engine.raw_connection()
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
            conn.close()  # back to the pool


_writers = _PerEngine(AuditWriter)


def audit_writer(engine: Engine) -> AuditWriter:
    """The engine's :class:`AuditWriter` (compiled on first use, then shared by its threads)."""
    return _writers(engine)


def write_audit(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert audit rows in one transaction (raises if it cannot commit)."""
    audit_writer(engine).write(rows)


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
