"""Keys and roles, inspections, model card, metrics, readiness, reload verification."""

from __future__ import annotations

import csv
import logging

import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.contract import INSPECTIONS
from serving.app import create_app
from serving.audit import export_inspections_csv


def _h(keys, role):
    return {"X-API-Key": keys[role]}


def test_roles_401_and_403(api, decl):
    client, keys, _ = api
    assert client.post("/v1/score", json=decl("k")).status_code == 401
    bad = {"X-API-Key": keys["inspector"][:-2] + "xx"}
    assert client.post("/v1/score", json=decl("k"), headers=bad).status_code == 401
    assert client.get("/v1/model", headers=_h(keys, "inspector")).status_code == 403
    assert (
        client.post("/v1/score", json=decl("k"), headers=_h(keys, "committee")).status_code == 403
    )
    assert client.get("/v1/model", headers=_h(keys, "committee")).status_code == 200
    assert client.post("/v1/admin/reload", headers=_h(keys, "committee")).status_code == 403
    assert client.get("/v1/keys", headers=_h(keys, "inspector")).status_code == 403
    # admin passes every check
    assert client.post("/v1/score", json=decl("k2"), headers=_h(keys, "admin")).status_code == 200


def test_key_lifecycle_and_keys_never_logged(api, decl, caplog):
    client, keys, _ = api
    caplog.set_level(logging.DEBUG)
    r = client.post("/v1/keys", json={"role": "inspector", "name": "port 2200"},
                    headers=_h(keys, "admin"))  # fmt: skip
    assert r.status_code == 201
    new = r.json()
    assert new["key"].startswith(new["key_id"])
    assert (
        client.post("/v1/score", json=decl("kl"), headers={"X-API-Key": new["key"]}).status_code
        == 200
    )
    listed = client.get("/v1/keys", headers=_h(keys, "admin")).json()
    assert new["key_id"] in {k["key_id"] for k in listed}
    assert all("key" not in k for k in listed)
    assert client.delete(f"/v1/keys/{new['key_id']}", headers=_h(keys, "admin")).status_code == 200
    assert (
        client.post("/v1/score", json=decl("kl2"), headers={"X-API-Key": new["key"]}).status_code
        == 401
    )
    assert client.delete(f"/v1/keys/{new['key_id']}", headers=_h(keys, "admin")).status_code == 404
    engine = sa.create_engine(client.app.state.settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM api_keys")).all()
    text = caplog.text + repr(stored)
    for key in [new["key"], *keys.values()]:
        assert key not in text


def test_inspection_moves_the_enterprises_next_score(api, decl, tmp_path):
    client, keys, _ = api
    ent = "E0030"
    first = client.post("/v1/score", json=decl("i0", enterprise=ent), params={"top_k": 1000},
                        headers=_h(keys, "inspector")).json()  # fmt: skip
    before = {x["feature"]: x["value"] for x in first["reasons"]}
    r = client.post(
        "/v1/inspections",
        json={
            "declaration_id": "Qi0",
            "inspected_at": "2025-10-28T02:00:00+00:00",
            "selection": "targeted",
            "result": "nonconforming",
            "hazard_type": "health",
            "severity": "critical",
            "disposal": "destroy",
        },
        headers=_h(keys, "inspector"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["snapshot_updated"] is True
    nxt = client.post("/v1/score", json=decl("i1", enterprise=ent, hours=3), params={"top_k": 1000},
                      headers=_h(keys, "inspector")).json()  # fmt: skip
    after = {x["feature"]: x["value"] for x in nxt["reasons"]}
    assert after["ent_nc_cnt_all"] == before["ent_nc_cnt_all"] + 1
    assert after["ent_ncmaj_cnt_all"] == before["ent_ncmaj_cnt_all"] + 1
    assert nxt["probability"] != first["probability"]
    # a second final result for the same declaration is refused
    again = client.post(
        "/v1/inspections",
        json={"declaration_id": "Qi0", "inspected_at": "2025-10-28T02:00:00Z",
              "selection": "targeted", "result": "conforming"},
        headers=_h(keys, "inspector"),
    )  # fmt: skip
    assert again.status_code == 409
    # unknown declaration: stored (feeds training) but the snapshot cannot place it
    r = client.post(
        "/v1/inspections",
        json={"declaration_id": "NOPE", "inspected_at": "2025-10-28T02:00:00Z",
              "selection": "random", "result": "conforming"},
        headers=_h(keys, "inspector"),
    )  # fmt: skip
    assert r.status_code == 201 and r.json()["snapshot_updated"] is False
    n = export_inspections_csv(client.app.state.engine, tmp_path / "inspections.csv")
    with (tmp_path / "inspections.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert n == 2 and list(rows[0]) == INSPECTIONS.names
    assert rows[0]["declaration_id"] == "Qi0" and rows[0]["severity"] == "critical"


def test_inspection_without_severity_is_stored_with_a_data_quality_issue(api):
    # Contract 1.1: the result (the label) is kept; the missing severity is reported.
    client, keys, _ = api
    r = client.post(
        "/v1/inspections",
        json={"declaration_id": "Q1", "inspected_at": "2025-10-28T02:00:00Z",
              "selection": "random", "result": "nonconforming", "hazard_type": "health"},
        headers=_h(keys, "inspector"),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert [e["field"] for e in r.json()["data_quality"]] == ["severity"]


def test_model_card(api, world):
    client, keys, _ = api
    card = client.get("/v1/model", headers=_h(keys, "committee")).json()
    assert (card["name"], card["version"], card["alias"]) == (world.model_name, "1", "champion")
    assert set(card["policy"]["thresholds"]) == {"high", "elevated", "normal"}
    # The bundle's evaluation as training stores it: the model and its baselines by budget.
    metrics = card["metrics"]
    assert set(metrics["test"]["budgets"]) == {"0.01", "0.02", "0.05", "0.1", "0.2"}
    assert 0 <= metrics["test"]["budgets"]["0.05"]["all_inspected"]["precision"] <= 1
    assert set(metrics["baselines"]["random"]["budgets"]) == set(metrics["test"]["budgets"])
    assert card["explainer"] in ("riskmodel.treeshap", "lightgbm.pred_contrib")
    assert len(card["features"]) > 50 and all(f["description_zh"] for f in card["features"])


def test_metrics_and_health(api, decl):
    client, keys, _ = api
    client.post("/v1/score", json=decl("met"), headers=_h(keys, "inspector"))
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["model_version"] == "1"
    text = client.get("/metrics").text
    assert 'guomen_http_requests_total{method="POST",route="/v1/score",status="200"}' in text
    assert "guomen_http_request_duration_seconds_bucket" in text
    assert "guomen_decisions_total{decision=" in text
    assert 'version="1"' in text and "guomen_model_info" in text


def test_not_ready_without_a_champion(world, tmp_path, decl):
    settings = world.settings(tmp_path / "nr.db", model_alias="no-such-alias")
    keys = world.make_keys(settings)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert (
            client.post("/v1/score", json=decl("nr"), headers=_h(keys, "inspector")).status_code
            == 503
        )


def test_a_version_failing_verification_is_not_swapped_in(api, world):
    client, keys, _ = api
    world.set_alias("tamper-test", world.versions["bad"])
    manager = client.app.state.models
    manager.alias = "tamper-test"
    try:
        outcome = manager.check()
    finally:
        manager.alias = "champion"
    assert not outcome.changed and "BundleVerificationError" in outcome.detail
    assert manager.current.ref.version == "1"
    r = client.post("/v1/admin/reload", headers=_h(keys, "admin")).json()
    assert r == {"changed": False, "version": "1", "previous_version": "1", "detail": "unchanged"}


def test_results_recorded_through_the_api_ingest_for_the_next_training(api, decl, tmp_path):
    """Scored declarations and their results export as contract files that ingest accepts."""
    from features.ingest import ingest
    from features.store import Store
    from serving.audit import export_declarations_csv

    client, keys, settings = api
    for i in ("x0", "x1"):
        r = client.post(
            "/v1/score", json=decl(i, enterprise="E0031"), headers=_h(keys, "inspector")
        )
        assert r.status_code == 200, r.text
    r = client.post(
        "/v1/inspections",
        json={"declaration_id": "Qx0", "inspected_at": "2025-10-28T02:00:00+00:00",
              "selection": "random", "result": "nonconforming", "hazard_type": "safety",
              "severity": "major"},
        headers=_h(keys, "inspector"),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    out = tmp_path / "from_api"
    engine = client.app.state.engine
    assert export_declarations_csv(engine, out / "declarations.csv") == 2
    assert export_inspections_csv(engine, out / "inspections.csv") == 1
    report = ingest(out, tmp_path / "store", timezone=settings.timezone)
    d = report.to_dict()
    tables = d.get("tables", d)
    assert tables["declarations"]["accepted"] == 2 and tables["declarations"]["quarantined"] == 0
    assert tables["inspections"]["accepted"] == 1 and tables["inspections"]["quarantined"] == 0
    stored = Store(tmp_path / "store").read("inspections")
    assert list(stored["declaration_id"]) == ["Qx0"] and list(stored["result"]) == ["nonconforming"]
