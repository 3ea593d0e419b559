"""POST /v1/score and /v1/score/batch: exact reasons, decisions, audit, validation (TestClient)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
import sqlalchemy as sa

from features.bundle import load_bundle
from features.online import OnlineFeatures
from features.rates import load_rates
from features.snapshot import Snapshot
from policy.monitoring import selected_for_monitoring
from serving.audit import canonical_sha256, score_audit, write_audit
from serving.db import create_schema, make_engine
from serving.decisions import RuleMeasure
from serving.schemas import BatchResponse, Declaration, ScoreResult


def _post(client, keys, body, **params):
    return client.post(
        "/v1/score", json=body, params=params, headers={"X-API-Key": keys["inspector"]}
    )


def test_contributions_add_up_to_the_logit_and_are_exact(api, world, decl):
    client, keys, _ = api
    body = decl("add", enterprise="E0007")
    r = _post(client, keys, body, explain="full", top_k=3)
    assert r.status_code == 200, r.text
    out = r.json()
    p = out["probability"]
    total = out["base_value"] + sum(out["contributions"].values())
    assert abs(total - math.log(p / (1 - p))) < 1e-6
    assert abs(total - out["logit"]) < 1e-9
    # Same vector, computed independently from a freshly loaded snapshot and bundle.
    bundle = load_bundle(world.bundles["v1"])
    row = Declaration.model_validate(body).model_dump(exclude={"attributes"})
    row["declared_value_usd"] = body["declared_value"]
    x = OnlineFeatures(
        Snapshot.load(world.snapshot_dir), bundle.feature_names, categories=bundle.categories
    ).vector(row)
    assert abs(bundle.probability(x[None, :])[0] - p) < 1e-9
    phi = bundle.booster.predict(x[None, :], pred_contrib=True)[0]
    a, b = bundle.calibration.a, bundle.calibration.b
    got = np.array([out["contributions"][n] for n in bundle.feature_names])
    np.testing.assert_allclose(got, a * phi[:-1], atol=1e-9)
    assert abs(out["base_value"] - (a * phi[-1] + b)) < 1e-9
    # Top reasons: largest |contribution| first, with values and both descriptions.
    reasons = out["reasons"]
    assert len(reasons) == 3
    mags = [abs(x["contribution"]) for x in reasons]
    assert mags == sorted(mags, reverse=True)
    assert mags[0] == pytest.approx(max(abs(v) for v in out["contributions"].values()))
    for reason in reasons:
        assert reason["description_zh"] and reason["description_en"]
        i = bundle.feature_names.index(reason["feature"])
        assert reason["value"] == (None if np.isnan(x[i]) else pytest.approx(x[i]))
    assert out["model"] == {"name": world.model_name, "version": "1", "alias": "champion"}
    assert out["snapshot_as_of"].startswith("2025-10-28")


def test_top_explain_omits_full_contributions(api, decl):
    client, keys, _ = api
    out = _post(client, keys, decl("top")).json()
    assert out["contributions"] is None and len(out["reasons"]) == 5


def test_unknown_enterprise_is_scored_with_novelty_features(api, decl):
    client, keys, _ = api
    out = _post(client, keys, decl("new", enterprise="NEVER-SEEN"), top_k=1000).json()
    values = {x["feature"]: x["value"] for x in out["reasons"]}
    assert values["ent_is_new_all"] == 1.0
    assert 0 < out["probability"] < 1


def test_currency_is_converted_at_the_declaration_time(api, decl):
    client, keys, _ = api
    body = decl("cur2", declared_value=1000.0, currency="CNY")
    at = np.array([np.datetime64(body["declared_at"][:19], "ns")])
    usd, _ = load_rates().to_usd(np.array([1000.0]), np.array(["CNY"], dtype=object), at)
    cny = _post(client, keys, body, top_k=1000).json()
    explicit = _post(
        client, keys, decl("cur3", declared_value=1000.0, currency="CNY",
                           declared_value_usd=float(usd[0])), top_k=1000
    ).json()  # fmt: skip
    log_value = {x["feature"]: x["value"] for x in cny["reasons"]}["decl_log_value_now"]
    assert log_value == pytest.approx(math.log1p(usd[0]), abs=1e-12)
    assert cny["probability"] == pytest.approx(explicit["probability"], abs=1e-12)


def test_decisions_mandatory_inspect_and_monitoring(api, world, decl):
    client, keys, settings = api
    out = _post(client, keys, decl("sd", enterprise=world.discredited)).json()
    assert (out["decision"], out["decision_reason"]) == (
        "mandatory",
        "severely_discredited_enterprise",
    )
    secret = settings.monitoring_secret.get_secret_value()
    share = client.app.state.models.current.policy.monitoring_share
    seen = set()
    for i in range(120):
        body = decl(f"m{i}", enterprise=f"E00{10 + i % 40}")
        out = _post(client, keys, body).json()
        drawn = selected_for_monitoring(body["declaration_id"], secret, share)
        assert out["monitoring_selected"] == drawn
        expected = "inspect" if out["tier"] == "high" else (
            "random_monitoring" if drawn else "release")  # fmt: skip
        assert out["decision"] == expected
        seen.add(out["decision"])
    assert {"release", "random_monitoring"} <= seen


def test_warning_measures_hook(api, decl):
    client, keys, _ = api
    app = client.app
    app.state.measure_provider = lambda: [
        RuleMeasure(lambda d: d["origin_country"] == "TH", "mandatory", 1.0, "W-TH"),
        RuleMeasure(lambda d: d["hs_code"].startswith("0302"), "raised", 1.0, "W-0302"),
        RuleMeasure(lambda d: d["hs_code"].startswith("0303"), "raised", 0.0, "W-0303"),
    ]
    out = _post(client, keys, decl("w1", origin_country="TH")).json()
    assert (out["decision"], out["warnings"]) == ("mandatory", ["W-TH"])
    out = _post(client, keys, decl("w2", hs_code="0302110000")).json()
    assert (out["decision_reason"], out["warnings"]) == ("warning_measure_raised", ["W-0302"])
    out = _post(client, keys, decl("w3", hs_code="0303110000")).json()
    assert out["warnings"] == [] and out["decision"] != "mandatory"
    with sa.create_engine(app.state.settings.database_url).connect() as conn:
        row = conn.execute(
            sa.select(score_audit.c.warnings).where(score_audit.c.declaration_id == "Qw1")
        ).scalar_one()
    assert row == ["W-TH"]


def test_audit_row_per_declaration(api, decl):
    client, keys, settings = api
    body = decl("aud")
    out = _post(client, keys, body).json()
    batch = client.post(
        "/v1/score/batch",
        json={"declarations": [decl(f"b{i}") for i in range(3)]},
        headers={"X-API-Key": keys["inspector"]},
    )
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["declaration_id"] for r in results] == ["Qb0", "Qb1", "Qb2"]
    engine = sa.create_engine(settings.database_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(score_audit))]
    by_decl = {r["declaration_id"]: r for r in rows}
    row = by_decl["Qaud"]
    assert row["request_id"] == out["request_id"]
    assert row["key_id"] == keys["inspector"][:12] and keys["inspector"] not in json.dumps(
        rows, default=str
    )
    expected_hash = canonical_sha256(Declaration.model_validate(body).model_dump(mode="json"))
    assert row["input_sha256"] == expected_hash
    assert row["model_version"] == "1" and row["probability"] == out["probability"]
    assert (row["tier"], row["decision"]) == (out["tier"], out["decision"])
    assert [r["feature"] for r in row["top_reasons"]] == [r["feature"] for r in out["reasons"]]
    assert row["snapshot_as_of"] is not None
    batch_rows = [r for r in rows if r["request_id"] == batch.json()["request_id"]]
    assert sorted(r["item"] for r in batch_rows) == [0, 1, 2]


def test_same_input_other_offset_hashes_the_same(api, decl):
    a = decl("h")
    b = dict(a, declared_at=a["declared_at"].replace("+00:00", "Z"))
    ha = canonical_sha256(Declaration.model_validate(a).model_dump(mode="json"))
    hb = canonical_sha256(Declaration.model_validate(b).model_dump(mode="json"))
    assert ha == hb


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hs_code": "03A1"}, "hs_code"),
        ({"declared_at": "2025-10-28T01:00:00"}, "declared_at"),
        ({"declared_at": "2021-01-01T00:00:00+00:00"}, "declared_at"),
        ({"trade_mode": "smuggling"}, "trade_mode"),
        ({"currency": "XYZ"}, "currency"),
        ({"declared_value": -1}, "declared_value"),
        ({"origin_country": "vn"}, "origin_country"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api, decl, change, field):
    client, keys, _ = api
    r = _post(client, keys, {**decl("bad"), **change})
    assert r.status_code == 422, r.text
    assert any(field in err["loc"] for err in r.json()["detail"]), r.json()


def test_batch_limit_and_empty_batch(api, decl):
    client, keys, settings = api
    too_many = [decl(f"x{i}") for i in range(settings.max_batch + 1)]
    r = client.post(
        "/v1/score/batch", json={"declarations": too_many}, headers={"X-API-Key": keys["inspector"]}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "declarations"]
    r = client.post(
        "/v1/score/batch", json={"declarations": []}, headers={"X-API-Key": keys["inspector"]}
    )
    assert r.status_code == 422


def test_batch_matches_single_scoring(api, decl):
    client, keys, _ = api
    # One timestamp: declarations sharing it do not see each other, so order cannot matter.
    bodies = [decl(f"s{i}", enterprise=f"E00{20 + i}", hours=2) for i in range(4)]
    batch = client.post(
        "/v1/score/batch?explain=full",
        json={"declarations": bodies},
        headers={"X-API-Key": keys["inspector"]},
    ).json()["results"]
    for body, got in zip(bodies, batch, strict=True):
        single = _post(client, keys, {**body, "declaration_id": body["declaration_id"] + "x"},
                       explain="full").json()  # fmt: skip
        assert got["probability"] == pytest.approx(single["probability"], abs=1e-12)
        p = got["probability"]
        assert (
            abs(got["base_value"] + sum(got["contributions"].values()) - math.log(p / (1 - p)))
            < 1e-6
        )


def test_body_too_large_is_413(api, decl):
    client, keys, settings = api
    big = b'{"declaration_id": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    headers = {"X-API-Key": keys["inspector"], "content-type": "application/json"}
    assert client.post("/v1/score", content=big, headers=headers).status_code == 413

    def chunks():  # no Content-Length: the streamed size is counted
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    r = client.post("/v1/score", content=chunks(), headers=headers)
    assert r.status_code == 413 and "too large" in r.json()["detail"]


@pytest.mark.parametrize("explain", ["top", "full"])
def test_answers_are_exactly_the_documented_model(api, decl, explain):
    # The endpoints serialise their answer once, without FastAPI's response_model pass: the
    # JSON must still be what that pass would have produced (every field, defaults included).
    client, keys, _ = api
    out = _post(client, keys, decl(f"schema-{explain}"), explain=explain).json()
    assert ScoreResult.model_validate(out).model_dump(mode="json") == out
    batch = client.post(
        f"/v1/score/batch?explain={explain}",
        json={"declarations": [decl(f"schema-b{explain}{i}") for i in range(2)]},
        headers={"X-API-Key": keys["inspector"]},
    ).json()
    assert BatchResponse.model_validate(batch).model_dump(mode="json") == batch


def test_audit_writer_stores_what_a_core_insert_stores(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    create_schema(engine)
    now = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
    row = {
        "item": 0, "created_at": now, "key_id": "gmk_abcdefgh", "declaration_id": "D1",
        "input_sha256": "a" * 64, "model_name": "m", "model_version": "3",
        "snapshot_as_of": now, "probability": 0.25, "tier": "high", "decision": "inspect",
        "decision_reason": "tier_high", "monitoring_selected": True, "warnings": ["W1"],
        "top_reasons": [{"feature": "f", "value": None, "contribution": -0.5}],
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(score_audit.insert(), [{**row, "request_id": "core"}])
    write_audit(engine, [{**row, "request_id": "fast"}])
    write_audit(engine, [{**row, "request_id": "many", "item": i} for i in range(3)])
    with engine.connect() as conn:
        got = {
            (r.request_id, r.item): {k: v for k, v in r._mapping.items() if k != "id"}
            for r in conn.execute(sa.select(score_audit))
        }
    core, fast = got.pop(("core", 0)), got.pop(("fast", 0))
    assert {**core, "request_id": "fast"} == fast
    assert fast["created_at"] == now and fast["top_reasons"] == row["top_reasons"]
    assert sorted(got) == [("many", 0), ("many", 1), ("many", 2)]
    # A failed insert (duplicate request id and item) stores nothing and raises.
    with pytest.raises(sa.exc.IntegrityError):
        write_audit(engine, [{**row, "request_id": "dup", "item": 0}] * 2)
    with engine.connect() as conn:
        n = conn.execute(
            sa.select(sa.func.count()).where(score_audit.c.request_id == "dup")
        ).scalar_one()
    assert n == 0
    engine.dispose()
