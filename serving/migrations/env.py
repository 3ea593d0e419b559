"""Alembic environment of the serving database (run by :func:`serving.db.create_schema`).

Migrations run on the connection :func:`serving.db.create_schema` passes in
``config.attributes["connection"]`` (already inside its transaction and, on PostgreSQL, holding
the migration lock), so there is no ``alembic.ini`` and no URL here.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "serving migrations run through serving.db.create_schema or `guomen db upgrade`"
    )
# The declared tables only when asked (autogenerate of a new revision): importing every table
# module costs seconds, and running the migrations does not need them.
context.configure(
    connection=connection, target_metadata=context.config.attributes.get("target_metadata")
)
with context.begin_transaction():
    context.run_migrations()
