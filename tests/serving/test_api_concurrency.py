"""Concurrent scoring against a real uvicorn server: every answer right and audited (the write
gate; docs/api.md, "Performance")."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from serving.app import create_app
from serving.audit import count_audit, score_audit

CLIENTS = 8
PER_CLIENT = 12


@pytest.fixture()
def server(world, tmp_path):
    settings = world.settings(tmp_path / "concurrency.db")
    keys = world.make_keys(settings)
    app = create_app(settings)
    with world.live_server(app) as live:
        live.wait_ready()
        yield live, keys, app


def test_concurrent_clients_get_their_own_audited_answers(server, decl):
    live, keys, app = server
    failures: list[str] = []
    answered: list[str] = []

    def client(k: int) -> None:
        with httpx.Client(base_url=live.url, headers={"X-API-Key": keys["inspector"]},
                          timeout=60) as http:  # fmt: skip
            for i in range(PER_CLIENT):
                body = decl(f"cc-{k}-{i}", enterprise=f"E{k:04d}", hours=i + 1)
                r = http.post("/v1/score", json=body)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                elif r.json()["declaration_id"] != body["declaration_id"]:
                    failures.append(f"answer for {r.json()['declaration_id']} to {k}-{i}")
                else:
                    answered.append(body["declaration_id"])

    pool = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert failures == []
    assert len(answered) == len(set(answered)) == CLIENTS * PER_CLIENT
    engine = app.state.engine
    assert count_audit(engine) == CLIENTS * PER_CLIENT
    with engine.connect() as conn:
        stored = {r[0] for r in conn.execute(sa.select(score_audit.c.declaration_id))}
    assert stored == set(answered)
    assert Path(f"{engine.url.database}-write.lock").exists()  # the gate ordered the writers
