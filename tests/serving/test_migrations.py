"""The serving database's Alembic migrations on real SQLite files and a real PostgreSQL server.

The databases "made before migrations" are built from ``tests/serving/data/pre_migrations_*.sql``:
the DDL that ``serving.db.create_schema`` produced before Alembic came in (main at fdd4a17), and
from it the schema of the first release (without the columns and tables added later).
PostgreSQL tests run in a schema of their own and skip only when ``GUOMEN_TEST_POSTGRES_URL``
is unset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from serving.db import create_schema, declared_metadata, head_revision, make_engine, schema_revision

DATA = Path(__file__).parent / "data"
PG_URL = os.environ.get("GUOMEN_TEST_POSTGRES_URL")
REPO = Path(__file__).resolve().parents[2]

# What releases before the warnings and rescoring features and before replay had (adopted by 0001).
LATER_COLUMNS = {
    "score_audit": ("declaration_json", "worker_id", "data_quality"),
    "inspection_results": ("worker_id", "data_quality"),
}
LATER_TABLES = ("warning_transitions", "warnings", "rescore_runs", "enterprise_profiles")


def _old_schema(engine: Engine, first_release: bool = False) -> None:
    """Create the pre-migration schema (today's, or the first release's) on ``engine``."""
    sql = (DATA / f"pre_migrations_{engine.dialect.name}.sql").read_text()
    statements = [s.strip() for s in sql.split(";") if s.strip().removeprefix("--")]
    with engine.begin() as conn:
        for statement in statements:
            lines = [ln for ln in statement.splitlines() if not ln.startswith("--")]
            conn.exec_driver_sql("\n".join(lines))
        if first_release:
            for table in LATER_TABLES:
                conn.exec_driver_sql(f"DROP TABLE {table}")
            for table, columns in LATER_COLUMNS.items():
                for column in columns:
                    conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")


def _write_old_rows(engine: Engine, first_release: bool = False) -> None:
    """One audit row and one key as the old code stored them."""
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    stamp = now.replace(tzinfo=None) if engine.dialect.name == "sqlite" else now
    audit = {
        "request_id": "req-old", "item": 0, "created_at": stamp, "key_id": "gmk_oldkey1",
        "declaration_id": "Qold", "input_sha256": "0" * 64, "model_name": "guomen-risk",
        "model_version": "3", "snapshot_as_of": None, "probability": 0.25, "tier": "elevated",
        "decision": "inspect", "decision_reason": "tier", "monitoring_selected": False,
        "warnings": "[]", "top_reasons": "[]",
    }  # fmt: skip
    if not first_release:
        audit |= {"declaration_json": "{}", "worker_id": "w1", "data_quality": "[]"}
    columns = ", ".join(audit)
    values = ", ".join(f":{c}" for c in audit)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO score_audit ({columns}) VALUES ({values})"), audit)
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (key_id, key_sha256, role, name, created_at) "
                "VALUES ('gmk_oldkey1', :sha, 'inspector', 'old', :at)"
            ),
            {"sha": "1" * 64, "at": stamp},
        )


def _schema_differences(engine: Engine) -> list[object]:
    """What differs between the database and the tables the code declares (empty: the same)."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), declared_metadata()))


def _check_at_head_with_old_rows(engine: Engine, first_release: bool) -> None:
    assert schema_revision(engine) == head_revision()
    assert _schema_differences(engine) == []
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM score_audit")).one()._mapping
        keys = conn.execute(sa.text("SELECT key_id, role FROM api_keys")).all()
    assert row["declaration_id"] == "Qold" and row["probability"] == 0.25
    assert row["data_quality"] is None if first_release else row["worker_id"] == "w1"
    assert [tuple(k) for k in keys] == [("gmk_oldkey1", "inspector")]


# --------------------------------------------------------------------------------- SQLite


def test_fresh_sqlite_database_gets_the_declared_schema(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert schema_revision(engine) is None
    create_schema(engine)
    assert schema_revision(engine) == head_revision()
    assert _schema_differences(engine) == []
    create_schema(make_engine(f"sqlite:///{tmp_path / 'fresh.db'}"))  # a second start: no-op
    assert schema_revision(engine) == head_revision()


@pytest.mark.parametrize("first_release", [False, True], ids=["today", "first-release"])
def test_sqlite_file_made_before_migrations_is_adopted_with_its_rows(tmp_path, first_release):
    path = tmp_path / "old.db"
    old = make_engine(f"sqlite:///{path}")
    _old_schema(old, first_release)
    _write_old_rows(old, first_release)
    old.dispose()
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    _check_at_head_with_old_rows(engine, first_release)


def test_unadoptable_table_stops_the_upgrade_and_changes_nothing(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'odd.db'}")
    with engine.begin() as conn:  # a score_audit that is not ours (no non-null item column)
        conn.exec_driver_sql("CREATE TABLE score_audit (id INTEGER PRIMARY KEY, x TEXT)")
    with pytest.raises(RuntimeError, match="non-null column request_id is missing"):
        create_schema(engine)
    assert schema_revision(engine) is None


def test_guomen_db_upgrade_migrates_an_old_sqlite_file(tmp_path):
    path = tmp_path / "cli.db"
    old = make_engine(f"sqlite:///{path}")
    _old_schema(old, first_release=True)
    _write_old_rows(old, first_release=True)
    old.dispose()
    env = os.environ | {"GUOMEN_DATABASE_URL": f"sqlite:///{path}", "GUOMEN_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "guomen"), "db", "upgrade"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"at revision {head_revision()} (was none)" in done.stdout
    _check_at_head_with_old_rows(make_engine(f"sqlite:///{path}"), first_release=True)


_RACE = """
import sys, time
from serving.db import create_schema, make_engine
engine = make_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # start together
create_schema(engine)
"""


def _migrate_concurrently(url: str, processes: int = 3) -> None:
    """``processes`` interpreters migrate ``url`` at the same moment; all must succeed."""
    start = time.time() + 8.0  # past every interpreter's imports
    env = os.environ | {"PYTHONPATH": str(REPO)}
    running = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, url, str(start)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(processes)
    ]
    errors = [p.communicate(timeout=300)[1] for p in running]
    assert [p.returncode for p in running] == [0] * processes, errors


def test_workers_starting_together_on_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    _migrate_concurrently(url)
    engine = make_engine(url)
    assert schema_revision(engine) == head_revision()
    assert _schema_differences(engine) == []


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections use a fresh PostgreSQL schema of their own (dropped after)."""
    if not PG_URL:
        pytest.skip("GUOMEN_TEST_POSTGRES_URL is not set")
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.mark.postgres
def test_fresh_postgres_database_gets_the_declared_schema(pg_url):
    engine = make_engine(pg_url)
    create_schema(engine)
    assert schema_revision(engine) == head_revision()
    assert _schema_differences(engine) == []
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("first_release", [False, True], ids=["today", "first-release"])
def test_postgres_database_made_before_migrations_is_adopted(pg_url, first_release):
    old = make_engine(pg_url)
    _old_schema(old, first_release)
    _write_old_rows(old, first_release)
    old.dispose()
    engine = make_engine(pg_url)
    create_schema(engine)
    _check_at_head_with_old_rows(engine, first_release)
    with engine.connect() as conn:  # JSON columns came through as JSON
        warnings = conn.execute(sa.text("SELECT warnings FROM score_audit")).scalar_one()
    assert json.dumps(warnings) == "[]"
    engine.dispose()


@pytest.mark.postgres
def test_workers_starting_together_on_postgres(pg_url):
    _migrate_concurrently(pg_url)
    engine = make_engine(pg_url)
    assert schema_revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar_one() == 1
    engine.dispose()
