"""One SQLAlchemy engine per process and the shared table metadata.

Every serving module declares its tables on :data:`metadata` (SQLAlchemy Core, no ORM); the
database itself is made and changed only by the Alembic migrations in ``serving/migrations``
(:func:`create_schema`, run at start-up and by ``guomen db upgrade``). A test checks that the
migrations at head give exactly the declared tables. SQLite is the default (WAL mode, a busy timeout so
concurrent writers wait instead of failing); any other SQLAlchemy URL, such as
``postgresql+psycopg://...``, works unchanged.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
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


def declared_metadata() -> sa.MetaData:
    """:data:`metadata` with every serving table declared on it (the modules are imported)."""
    import serving.audit  # noqa: F401
    import serving.auth  # noqa: F401
    import serving.plan_store  # noqa: F401
    import serving.rescore.db  # noqa: F401
    import serving.storage  # noqa: F401
    import serving.warnings_store  # noqa: F401

    return metadata


def alembic_config(connection: sa.Connection | None = None) -> AlembicConfig:
    """The Alembic configuration of the serving migrations (shipped in ``serving/migrations``).

    ``connection``: the connection the migrations run on (``env.py`` reads it from
    ``config.attributes``); there is no ``alembic.ini``.
    """
    config = AlembicConfig()
    config.set_main_option("script_location", "serving:migrations")
    config.attributes["connection"] = connection
    return config


def schema_revision(engine: Engine) -> str | None:
    """The database's migration revision (None: no migrations applied yet)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest migration revision shipped with the code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no serving migrations found (serving/migrations/versions)")
    return head


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (workers start at once).

    An exclusive ``flock`` on ``<database>.migrate.lock`` (SQLite runs most DDL outside a
    transaction, so its own locks do not make "check revision, then upgrade" atomic).
    """
    database = engine.url.database or ""
    if (
        engine.dialect.name != "sqlite"
        or database in ("", ":memory:")
        or database.startswith("file:")
    ):
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate.lock")
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


# Engines already migrated to head by this process (start-up and every writer call
# create_schema; only the first call per engine pays for the check).
_at_head: weakref.WeakSet[Engine] = weakref.WeakSet()
_at_head_lock = threading.Lock()

# pg_advisory_xact_lock key of the migration (any constant of ours; "guomen" in ASCII).
_PG_MIGRATION_LOCK = 0x67756F6D656E


def create_schema(engine: Engine) -> None:
    """Bring the database to the newest migration (Alembic, ``serving/migrations``).

    Creates every table on a fresh database; adopts a database made before migrations (see
    revision ``0001``); applies later revisions in order. Several workers may start at once:
    on PostgreSQL they queue on an advisory lock inside the migration's transaction, on SQLite
    on a file lock, so one migrates and the others find the database at head.
    """
    if engine in _at_head:
        return
    with _at_head_lock, _sqlite_migration_lock(engine), engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        before = MigrationContext.configure(conn).get_current_revision()
        alembic_command.upgrade(alembic_config(conn), "head")
        after = MigrationContext.configure(conn).get_current_revision()
        if before != after:
            log.info("database schema migrated from %s to %s", before or "(none)", after)
    _at_head.add(engine)


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)
