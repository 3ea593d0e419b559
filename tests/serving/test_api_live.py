"""Against a real uvicorn server on 127.0.0.1: end to end, and hot reload under load."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter

import httpx
import pytest

from serving.app import create_app
from serving.audit import count_audit


@pytest.fixture()
def live(world, tmp_path):
    settings = world.settings(
        tmp_path / "live.db", model_alias="live-test", reload_poll_seconds=0.2
    )
    world.set_alias("live-test", world.versions["v1"])
    keys = world.make_keys(settings)
    app = create_app(settings)
    with world.live_server(app) as server:
        server.wait_ready()
        yield server, keys, app


def test_end_to_end_over_http(live, decl, caplog):
    server, keys, app = live
    caplog.set_level(logging.DEBUG)
    admin = {"X-API-Key": keys["admin"]}
    created = httpx.post(server.url + "/v1/keys", json={"role": "inspector"}, headers=admin).json()
    inspector = {"X-API-Key": created["key"]}
    with httpx.Client(base_url=server.url, headers=inspector) as http:
        r = http.post("/v1/score", json=decl("e2e", enterprise="E0040"), params={"explain": "full"})
        assert r.status_code == 200, r.text
        out = r.json()
        p = out["probability"]
        assert (
            abs(out["base_value"] + sum(out["contributions"].values()) - math.log(p / (1 - p)))
            < 1e-6
        )
        r = http.post("/v1/inspections", json={
            "declaration_id": "Qe2e", "inspected_at": "2025-10-28T01:30:00Z",
            "selection": "random", "result": "conforming"})  # fmt: skip
        assert r.status_code == 201 and r.json()["snapshot_updated"]
        assert http.get("/readyz").json()["ready"] is True
    assert count_audit(app.state.engine) == 1
    for key in [created["key"], *keys.values()]:
        assert key not in caplog.text


def test_reload_during_a_burst_loses_no_request(live, world, decl):
    server, keys, app = live
    headers = {"X-API-Key": keys["inspector"]}
    versions: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        i = 0
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            while not stop.is_set():
                i += 1
                try:
                    r = http.post(
                        "/v1/score", json=decl(f"burst-{n}-{i}", enterprise=f"E00{n + 10}")
                    )
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                with lock:
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        versions[r.json()["model"]["version"]] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    world.set_alias("live-test", world.versions["v2"])  # the poller picks it up
    deadline = time.monotonic() + 60
    while versions[world.versions["v2"]] < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert versions[world.versions["v1"]] > 0 and versions[world.versions["v2"]] >= 20
    assert count_audit(app.state.engine) == sum(versions.values())
    # The admin endpoint triggers the same check: back to v1.
    world.set_alias("live-test", world.versions["v1"])
    r = httpx.post(server.url + "/v1/admin/reload", headers={"X-API-Key": keys["admin"]}).json()
    assert r["version"] == world.versions["v1"] or r["detail"] == "unchanged"
    assert app.state.models.current.ref.version == world.versions["v1"]
