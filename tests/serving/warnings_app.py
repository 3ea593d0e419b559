"""A real FastAPI app with the warnings API and committee pages, for the warnings tests.

It includes the real routers (``serving.routes.warnings``, ``serving.routes.warning_record``,
``serving.routes.pages``), a real
SQLite database with the serving schema and the real ``KeyStore``; the contract tables are the
small synthetic ones of ``tests/policy/warnings_synth.py`` (no ingested store needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from guomen.settings import Settings
from serving.app import install_hardening
from serving.auth import KeyStore, create_key
from serving.committee.render import mount_static
from serving.db import create_schema, make_engine
from serving.routes import pages, warning_record, warnings
from tests.policy.warnings_synth import make_tables, new_declaration, reports, with_reports
from tests.serving.serving_world import TEST_SECRETS

__all__ = ["build_app", "make_tables", "new_declaration", "reports", "with_reports"]


def build_app(
    db_path: Path, tables: dict[str, Any] | None = None
) -> tuple[FastAPI, dict[str, str]]:
    """The app and one key per role (``committee``, ``inspector``, ``admin``)."""
    engine = make_engine(f"sqlite:///{db_path}")
    create_schema(engine)
    app = FastAPI()
    # home beside the database: the data folder (rescoring runs) is the test's own
    app.state.settings = Settings(
        home=db_path.parent, database_url=f"sqlite:///{db_path}", **TEST_SECRETS
    )
    app.state.engine = engine
    app.state.keys = KeyStore(engine, cache_seconds=0.0)
    app.state.warning_tables = tables if tables is not None else make_tables()
    install_hardening(app, app.state.settings.max_body_bytes)
    warnings.install(app)
    app.include_router(warnings.router)
    app.include_router(warning_record.router)  # before pages, as in serving.app
    app.include_router(pages.router)
    mount_static(app)
    keys = {role: create_key(engine, role, name=f"test {role}")[0] for role in
            ("committee", "inspector", "admin")}  # fmt: skip
    return app, keys
