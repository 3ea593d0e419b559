"""The audit log, keys and inspections on a real PostgreSQL server (``scripts/start_postgres.sh``).

Skipped only when ``GUOMEN_TEST_POSTGRES_URL`` is unset; CI sets it.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.audit import count_audit, inspection_results, score_audit
from serving.db import make_engine
from tests.serving.database import reset_database

pytestmark = pytest.mark.postgres
URL = os.environ.get("GUOMEN_TEST_POSTGRES_URL")


@pytest.mark.skipif(not URL, reason="GUOMEN_TEST_POSTGRES_URL is not set")
def test_scoring_audit_and_inspections_on_postgres(world, decl):
    engine = make_engine(URL)
    assert engine.dialect.name == "postgresql"
    reset_database(engine)  # a clean schema for this run
    engine.dispose()
    settings = world.settings(world.root / "unused.db", database_url=URL, max_batch=5)
    keys = world.make_keys(settings)
    headers = {"X-API-Key": keys["inspector"]}
    with TestClient(create_app(settings)) as client:
        one = client.post("/v1/score", json=decl("pg1"), headers=headers)
        assert one.status_code == 200, one.text
        batch = client.post("/v1/score/batch",
                            json={"declarations": [decl("pg2"), decl("pg3")]}, headers=headers)  # fmt: skip
        assert batch.status_code == 200, batch.text
        r = client.post("/v1/inspections", json={
            "declaration_id": "Qpg1", "inspected_at": "2025-10-28T03:00:00+08:00",
            "selection": "targeted", "result": "nonconforming", "hazard_type": "safety",
            "severity": "minor"}, headers=headers)  # fmt: skip
        assert r.status_code == 201
        assert client.get("/v1/model", headers=headers).status_code == 403
    engine = make_engine(URL)
    try:
        assert count_audit(engine) == 3
        with engine.connect() as conn:
            row = (
                conn.execute(sa.select(score_audit).where(score_audit.c.declaration_id == "Qpg1"))
                .one()
                ._mapping
            )
            insp = conn.execute(sa.select(inspection_results)).one()._mapping
        assert row["key_id"] == keys["inspector"][:12]
        assert row["probability"] == pytest.approx(one.json()["probability"], abs=1e-12)
        assert row["created_at"].tzinfo is not None and isinstance(row["top_reasons"], list)
        assert insp["inspected_at"].isoformat() == "2025-10-27T19:00:00+00:00"
    finally:
        engine.dispose()
