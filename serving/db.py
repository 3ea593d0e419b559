"""One SQLAlchemy engine per process and the shared table metadata.

Every serving module declares its tables on :data:`metadata` (SQLAlchemy Core, no ORM), so one
``create_all`` makes the whole schema. SQLite is the default (WAL mode, a busy timeout so
concurrent writers wait instead of failing); any other SQLAlchemy URL, such as
``postgresql+psycopg://...``, works unchanged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("guomen.serving.db")

metadata = sa.MetaData()

SQLITE_BUSY_TIMEOUT_MS = 30_000


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_pragmas(synchronous: str) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the single writer. synchronous=NORMAL: a commit is in the
        # WAL file before the call returns (survives a killed process; ~0.1 ms); FULL also
        # fsyncs every commit (survives a power cut; several ms per request on this disk).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def make_engine(url: str, sqlite_synchronous: str = "NORMAL") -> Engine:
    """Create the engine for ``url`` (SQLite gets WAL, a busy timeout and its folder created).

    Parameters
    ----------
    url
        Any SQLAlchemy URL; ``sqlite:///relative/path.db`` is relative to the working directory.
    sqlite_synchronous
        ``NORMAL`` or ``FULL`` (SQLite only; see ``Settings.sqlite_synchronous``).
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=32,
        )
        if sqlite_synchronous not in ("NORMAL", "FULL"):
            raise ValueError(
                f"sqlite_synchronous must be NORMAL or FULL, not {sqlite_synchronous!r}"
            )
        sa.event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous))
        return engine
    return sa.create_engine(parsed, pool_size=8, max_overflow=32, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create every table declared on :data:`metadata` that does not exist yet.

    Several uvicorn workers may start at once; the loser of a create race retries once.
    """
    # Import for the side effect of declaring the tables on ``metadata``.
    import serving.audit  # noqa: F401
    import serving.auth  # noqa: F401
    import serving.storage  # noqa: F401

    try:
        metadata.create_all(engine)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError):
        log.info("schema creation raced with another process; retrying")
        metadata.create_all(engine)
    _add_missing_columns(engine, serving.audit.ADDED_COLUMNS)


def _add_missing_columns(engine: Engine, added: dict[str, tuple[str, ...]]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for nullable columns a database made earlier lacks.

    ``create_all`` never changes an existing table. The DDL is built from our own metadata
    (identifiers cannot be bound parameters); another worker adding the same column first is
    not an error.
    """
    for table_name, columns in added.items():
        table = metadata.tables[table_name]
        have = {c["name"] for c in sa.inspect(engine).get_columns(table_name)}
        for name in columns:
            if name in have:
                continue
            column = table.c[name]
            if not column.nullable:
                raise RuntimeError(f"cannot add the non-null column {table_name}.{name}")
            ddl = sa.schema.CreateColumn(column).compile(dialect=engine.dialect)
            statement = f"ALTER TABLE {table.name} ADD COLUMN {ddl}"
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(statement)
                log.info("added column %s.%s", table_name, name)
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                again = {c["name"] for c in sa.inspect(engine).get_columns(table_name)}
                if name not in again:
                    raise


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)
