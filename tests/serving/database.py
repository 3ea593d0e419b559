"""Test helper: a database emptied of every table, whatever made them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def reset_database(engine: Engine) -> None:
    """Drop every table in the engine's database (or PostgreSQL schema), ``alembic_version`` too,
    so the next :func:`serving.db.create_schema` starts from nothing."""
    existing = sa.MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)
