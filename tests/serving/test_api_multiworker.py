"""Several worker processes, one database: each replays what the others stored (serving.sync).

The main test runs two real uvicorn processes on two ports sharing one SQLite file (the same
setup as ``guomen serve --workers 2``, but each worker can be targeted): a declaration scored on
A and an inspection result recorded on B reach the other worker's snapshot, so both score the
enterprise's next declaration identically. The same path runs in-process on PostgreSQL when
``GUOMEN_TEST_POSTGRES_URL`` is set.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from guomen.settings import Settings
from serving.app import create_app
from serving.audit import inspection_results, score_audit, sha256_text
from serving.db import make_engine
from serving.sync import _Cursor
from tests.serving.database import reset_database

REPO = Path(__file__).resolve().parents[2]
ENTERPRISE = "E0007"
PG_URL = os.environ.get("GUOMEN_TEST_POSTGRES_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "home",
        "database_url",
        "mlflow_tracking_uri",
        "model_name",
        "model_alias",
        "snapshot_dir",
        "models_dir",
        "reload_poll_seconds",
        "key_cache_seconds",
        "snapshot_sync_seconds",
    ):
        env[f"GUOMEN_{name.upper()}"] = str(getattr(settings, name))
    for name in ("monitoring_secret", "measure_secret", "session_secret"):
        env[f"GUOMEN_{name.upper()}"] = settings.secret(name)
    return env


class Worker:
    """``uvicorn serving.app:app_from_env --factory`` in its own process."""

    def __init__(
        self, settings: Settings, cwd: Path, name: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "serving.app:app_from_env", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            cwd=cwd, env={**_env(settings), "PYTHONPATH": str(REPO), **(extra_env or {})},
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"worker never ready: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture()
def two_workers(world, tmp_path) -> Iterator[tuple[Worker, Worker, dict[str, str], Settings]]:
    settings = world.settings(tmp_path / "shared.db", snapshot_sync_seconds=0.2)
    keys = world.make_keys(settings)
    workers = [Worker(settings, tmp_path, name) for name in ("a", "b")]
    try:
        for w in workers:
            w.wait_ready()
        yield workers[0], workers[1], keys, settings
    finally:
        for w in workers:
            w.stop()


def _values(body: dict[str, Any]) -> dict[str, Any]:
    """Every feature value of a ``top_k=1000`` answer (the reasons carry the values)."""
    return {r["feature"]: r["value"] for r in body["reasons"]}


def _probe(i: str, decl: Any) -> dict[str, Any]:
    # Same declared_at for every probe: a declaration only counts for strictly later ones, so
    # scoring one probe never changes another's features.
    return decl(i, enterprise=ENTERPRISE, hours=48)


INSPECTION = {
    "inspected_at": "2025-10-28T03:00:00Z",  # between the declaration (+1 h) and the probes
    "selection": "targeted",
    "result": "nonconforming",
    "hazard_type": "health",
    "severity": "major",
}


def _post(http: Any, url: str, path: str, body: dict, **params: Any) -> dict[str, Any]:
    r = http.post(url + path, json=body, params=params)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def _wait(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the other worker never applied the stored rows")
        time.sleep(0.1)


def test_two_processes_score_with_each_others_events(two_workers, world, decl, tmp_path):
    a, b, keys, settings = two_workers
    http = httpx.Client(headers={"X-API-Key": keys["inspector"]}, timeout=30)
    full = {"top_k": 1000, "explain": "full"}
    before = _post(http, b.url, "/v1/score", _probe("mw-before", decl), **full)

    # A scores a declaration; B learns it from the audit row (the inspection below needs it).
    _post(http, a.url, "/v1/score", decl("mw1", enterprise=ENTERPRISE, hours=1))

    def b_knows_mw1() -> bool:  # the enterprise's declaration counts change on B
        probe = _post(http, b.url, "/v1/score", _probe(f"mw-b{time.monotonic_ns()}", decl), **full)
        return _values(probe) != _values(before)

    _wait(b_knows_mw1)
    # A's answer before the result exists (taken after the inspection was stored, A's sync could
    # already have applied it: a race the faster poll made frequent on a quiet machine).
    on_a_before = _post(http, a.url, "/v1/score", _probe("mw-a0", decl), **full)
    # The result goes to B, which never scored mw1: it is placed thanks to the replay.
    stored = _post(http, b.url, "/v1/inspections", {"declaration_id": "Qmw1", **INSPECTION})
    assert stored["snapshot_updated"] is True

    def same_on_both() -> bool:
        on_a = _post(http, a.url, "/v1/score", _probe(f"mw-a{time.monotonic_ns()}", decl), **full)
        on_b = _post(http, b.url, "/v1/score", _probe(f"mw-b{time.monotonic_ns()}", decl), **full)
        return on_a["contributions"] == on_b["contributions"] and _values(on_a) == _values(on_b)

    _wait(same_on_both)
    on_a = _post(http, a.url, "/v1/score", _probe("mw-a-final", decl), **full)
    on_b = _post(http, b.url, "/v1/score", _probe("mw-b-final", decl), **full)
    assert on_a["probability"] == on_b["probability"]
    assert _values(on_a) == _values(on_b)
    # ... and the inspection B recorded changed A's answer (A never received it).
    assert _values(on_a) != _values(on_a_before)
    assert on_a["probability"] != on_a_before["probability"]
    assert on_a["probability"] != before["probability"]

    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        audit = [dict(r._mapping) for r in conn.execute(sa.select(score_audit))]
        insp = conn.execute(sa.select(inspection_results)).one()._mapping
    engine.dispose()
    workers = {r["worker_id"] for r in audit}
    assert len(workers) == 2 and None not in workers
    assert insp["worker_id"] in workers
    mw1 = next(r for r in audit if r["declaration_id"] == "Qmw1")
    assert mw1["worker_id"] != insp["worker_id"]
    # The stored JSON is exactly what the stored hash covers.
    assert all(sha256_text(r["declaration_json"]) == r["input_sha256"] for r in audit)

    # A worker started now catches up from the rows since its snapshot's as_of.
    fresh_app = create_app(settings)
    with TestClient(fresh_app, headers={"X-API-Key": keys["inspector"]}) as fresh:
        fresh_app.state.sync.stop()  # only the start-up catch-up is under test
        on_c = _post(fresh, "", "/v1/score", _probe("mw-fresh", decl), **full)
    assert _values(on_c) == _values(on_a)
    assert on_c["probability"] == on_a["probability"]


def _shared_apps(world: Any, url: str, keys_db: Path) -> tuple[Any, Any, Settings]:
    settings = world.settings(keys_db, database_url=url, snapshot_sync_seconds=3600.0)
    return create_app(settings), create_app(settings), settings


def _in_process_round_trip(world: Any, decl: Any, url: str) -> None:
    """Two apps (two live snapshots) in one process on one database; polls called directly."""
    app_a, app_b, settings = _shared_apps(world, url, Path("unused.db"))
    keys = world.make_keys(settings)
    headers = {"X-API-Key": keys["inspector"]}
    full = {"top_k": 1000, "explain": "full"}
    with TestClient(app_a) as a, TestClient(app_b) as b:
        before = b.post("/v1/score", json=_probe("ip-before", decl), params=full, headers=headers)
        assert before.status_code == 200, before.text
        r = a.post("/v1/score/batch", headers=headers, json={
            "declarations": [decl("ip1", enterprise=ENTERPRISE, hours=1),
                             decl("ip2", enterprise=ENTERPRISE, hours=2)]})  # fmt: skip
        assert r.status_code == 200, r.text
        # Not yet polled: B does not know ip1.
        r = b.post("/v1/inspections", json={"declaration_id": "Qip1", **INSPECTION},
                   headers=headers)  # fmt: skip
        assert r.status_code == 201 and r.json()["snapshot_updated"] is False
        # B's poll replays A's two declarations, then places the waiting result.
        assert app_b.state.sync.poll_once() == (2, 1)
        assert app_a.state.sync.poll_once() == (1, 1)  # B's "before" probe and the result
        assert app_a.state.sync.poll_once() == (0, 0)  # nothing twice
        on_a = a.post("/v1/score", json=_probe("ip-a", decl), params=full, headers=headers)
        on_b = b.post("/v1/score", json=_probe("ip-b", decl), params=full, headers=headers)
        assert on_a.json()["contributions"] == on_b.json()["contributions"]
        assert _values(on_a.json()) == _values(on_b.json())
        assert _values(on_a.json()) != _values(before.json())


def test_in_process_workers_on_sqlite(world, decl, tmp_path):
    _in_process_round_trip(world, decl, f"sqlite:///{tmp_path / 'shared.db'}")


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="GUOMEN_TEST_POSTGRES_URL is not set")
def test_in_process_workers_on_postgres(world, decl):
    assert PG_URL is not None
    engine = make_engine(PG_URL)
    reset_database(engine)
    engine.dispose()
    _in_process_round_trip(world, decl, PG_URL)


def test_cursor_remembers_skipped_ids_until_they_appear():
    cursor = _Cursor()
    cursor.advance([1, 2, 5], now=0.0)  # 3 and 4 not committed yet (PostgreSQL sequences)
    assert cursor.max_id == 5 and sorted(cursor.gaps) == [3, 4]
    cursor.advance([4, 6], now=1.0)
    assert cursor.max_id == 6 and sorted(cursor.gaps) == [3]
    cursor.expire(now=1000.0)
    assert cursor.gaps == {}


def _score_requests(metrics_text: str) -> float:
    """The ``/v1/score`` 200 count in a Prometheus exposition."""
    total = 0.0
    for line in metrics_text.splitlines():
        ours = line.startswith("guomen_http_requests_total{") and 'route="/v1/score"' in line
        if ours and 'status="200"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_of_every_worker_are_served_by_any(world, decl, tmp_path):
    """Multiprocess mode: each worker's /metrics counts the requests the other one answered."""
    settings = world.settings(tmp_path / "shared.db")
    keys = world.make_keys(settings)
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    a, b = (Worker(settings, tmp_path, name, extra_env=env) for name in ("ma", "mb"))
    try:
        a.wait_ready()
        b.wait_ready()
        http = httpx.Client(headers={"X-API-Key": keys["inspector"]}, timeout=30)
        for i in range(3):
            _post(http, a.url, "/v1/score", decl(f"pm-a{i}", hours=2))
        for i in range(2):
            _post(http, b.url, "/v1/score", decl(f"pm-b{i}", hours=2))
        on_a = httpx.get(a.url + "/metrics", timeout=10).text
        on_b = httpx.get(b.url + "/metrics", timeout=10).text
        assert _score_requests(on_a) == _score_requests(on_b) == 5
        # The model gauge is per live worker: both pids are there.
        assert on_a.count("guomen_model_info{") == 2, on_a
    finally:
        a.stop()
        b.stop()
