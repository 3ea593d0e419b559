"""Contract 1.1 at the API: a declaration the customs system accepted is always scored.

A bad optional value is read as missing and listed in ``data_quality`` (response and audit row);
the declaration's issue count is the feature ``decl_dq_issue_cnt_now``. The API and ingest apply
the same rules: what the API scored, exported and ingested, gives the same issues and the same
feature offline. Only what makes scoring impossible is a 422 naming the field.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sqlalchemy as sa

from features.build import build_offline
from features.ingest import ingest
from features.store import Store
from serving.audit import (
    export_declarations_csv,
    export_inspections_csv,
    inspection_results,
    score_audit,
)
from serving.schemas import ScoreResult


def _h(keys):
    return {"X-API-Key": keys["inspector"]}


def _score(client, keys, body, **params):
    return client.post("/v1/score", json=body, params={"top_k": 1000, **params}, headers=_h(keys))


def _values(out):
    return {x["feature"]: x["value"] for x in out["reasons"]}


def _audit_rows(engine):
    with engine.connect() as conn:
        return {r.declaration_id: r for r in conn.execute(sa.select(score_audit))}


def test_zero_weight_is_scored_with_a_data_quality_entry(api, decl):
    client, keys, _ = api
    r = _score(client, keys, decl("w0", net_weight_kg=0))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["data_quality"] == [{"field": "net_weight_kg", "reason": "must be > 0", "raw": 0}]
    assert ScoreResult.model_validate(out).model_dump(mode="json") == out
    values = _values(out)
    assert values["decl_log_weight_now"] is None  # missing, not ln(1 + 0)
    assert values["decl_log_unit_value_now"] is None
    assert values["decl_dq_issue_cnt_now"] == 1.0
    clean = _score(client, keys, decl("w1")).json()
    assert clean["data_quality"] == [] and _values(clean)["decl_dq_issue_cnt_now"] == 0.0
    row = _audit_rows(client.app.state.engine)["Qw0"]
    assert row.data_quality == out["data_quality"]
    # Stored as sent: a replay or an export to ingest finds the same issue.
    assert json.loads(row.declaration_json)["net_weight_kg"] == 0
    assert _audit_rows(client.app.state.engine)["Qw1"].data_quality == []


def test_negative_weight_and_quantity_in_a_batch(api, decl):
    client, keys, _ = api
    bodies = [decl("n0", net_weight_kg=-3.5), decl("n1", quantity=-1), decl("n2")]
    r = client.post("/v1/score/batch", json={"declarations": bodies}, headers=_h(keys))
    assert r.status_code == 200, r.text
    got = [x["data_quality"] for x in r.json()["results"]]
    assert got == [
        [{"field": "net_weight_kg", "reason": "must be > 0", "raw": -3.5}],
        [{"field": "quantity", "reason": "must be >= 0", "raw": -1}],
        [],
    ]


def test_user_assigned_countries_are_values_of_their_own(api, decl):
    client, keys, _ = api
    for i, (origin, destination) in enumerate((("ZZ", None), ("XX", "QU"), ("EU", "ZZ"))):
        body = decl(f"zz{i}", origin_country=origin, destination_country=destination)
        r = _score(client, keys, body)
        assert r.status_code == 200, r.text
        assert r.json()["data_quality"] == []
    # An unknown code in the required origin is refused, with the contract's reason.
    r = _score(client, keys, decl("ab", origin_country="AB"))
    assert r.status_code == 422
    [err] = r.json()["detail"]
    assert err["loc"] == ["body", "origin_country"] and "unknown country code" in err["msg"]
    # In the optional destination it is read as missing.
    r = _score(client, keys, decl("ab2", destination_country="AB"))
    assert r.status_code == 200, r.text
    assert r.json()["data_quality"] == [
        {"field": "destination_country", "reason": "unknown country code", "raw": "AB"}
    ]


def test_unknown_optional_enum_and_unparseable_values_are_read_as_missing(api, decl):
    client, keys, _ = api
    body = decl("enum", transport_mode="ship", quantity="a few", third_party_certificate="maybe")
    r = _score(client, keys, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert {(x["field"], x["reason"], x["raw"]) for x in out["data_quality"]} == {
        ("transport_mode", "not an allowed value", "ship"),
        ("quantity", "not a number", "a few"),
        ("third_party_certificate", "not a boolean", "maybe"),
    }
    values = _values(out)
    assert values["decl_transport_mode_code_now"] is None
    assert values["decl_third_party_cert_flag_now"] == 0.0  # the contract default
    assert values["decl_dq_issue_cnt_now"] == 3.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"direction": "IMPORT"}, "direction"),
        ({"hs_code": "303"}, "hs_code"),
        ({"origin_country": "CHN"}, "origin_country"),
        ({"declared_value": -5}, "declared_value"),
        ({"enterprise_id": ""}, "enterprise_id"),
        ({"net_weight_kg": {"kg": 3}}, "net_weight_kg"),  # not a JSON scalar: malformed
    ],
)
def test_only_what_makes_scoring_impossible_is_refused(api, decl, change, field):
    client, keys, _ = api
    r = _score(client, keys, {**decl("refuse"), **change})
    assert r.status_code == 422, r.text
    assert any(field in err["loc"] for err in r.json()["detail"]), r.json()


def test_nonconforming_without_hazard_or_severity_is_stored(api, decl):
    client, keys, _ = api
    assert _score(client, keys, decl("nc")).status_code == 200
    r = client.post(
        "/v1/inspections",
        json={"declaration_id": "Qnc", "inspected_at": "2025-10-28T02:00:00Z",
              "selection": "random", "result": "nonconforming", "disposal": "burn"},
        headers=_h(keys),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    expected = [
        {"field": "disposal", "reason": "not an allowed value", "raw": "burn"},
        {"field": "hazard_type", "reason": "missing, expected when result is nonconforming",
         "raw": None},
        {"field": "severity", "reason": "missing, expected when result is nonconforming",
         "raw": None},
    ]  # fmt: skip
    assert r.json()["data_quality"] == expected
    with client.app.state.engine.connect() as conn:
        row = conn.execute(sa.select(inspection_results)).one()
    assert (row.result, row.hazard_type, row.disposal) == ("nonconforming", None, None)
    assert row.data_quality == expected


def test_api_and_ingest_give_the_same_issues_and_the_same_feature(api, decl, tmp_path):
    """Scored through the API, exported, ingested: the same rules, issues and feature value."""
    client, keys, settings = api
    bodies = [
        decl("p0", net_weight_kg=0, origin_country="ZZ"),
        decl("p1", transport_mode="ship", destination_country="AB", quantity=-2),
        decl("p2", third_party_certificate="maybe", destination_country="XX"),
        decl("p3", origin_country="QU"),
    ]
    online = {}
    for body in bodies:
        r = _score(client, keys, body)
        assert r.status_code == 200, r.text
        online[body["declaration_id"]] = r.json()
    r = client.post(
        "/v1/inspections",
        json={"declaration_id": "Qp0", "inspected_at": "2025-10-28T03:00:00Z",
              "selection": "targeted", "result": "nonconforming", "disposal": "burn"},
        headers=_h(keys),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    src = tmp_path / "from_api"
    engine = client.app.state.engine
    assert export_declarations_csv(engine, src / "declarations.csv") == 4
    assert export_inspections_csv(engine, src / "inspections.csv") == 1
    report = ingest(src, tmp_path / "store", timezone=settings.timezone)
    assert report.tables["declarations"].quarantined == 0
    assert report.tables["inspections"].quarantined == 0
    store = Store(tmp_path / "store")
    decl_table = store.read("declarations").set_index("declaration_id")
    dq = store.data_quality()
    for key, out in online.items():
        api_issues = {(x["field"], x["reason"], str(x["raw"])) for x in out["data_quality"]}
        rows = dq[(dq["table"] == "declarations") & (dq["key"] == key)]
        ingest_issues = set(zip(rows["column"], rows["reason"], rows["raw"], strict=True))
        assert api_issues == ingest_issues, key
        assert decl_table.loc[key, "dq_issue_count"] == len(out["data_quality"])
    assert decl_table.loc["Qp0", "origin_country"] == "ZZ"
    assert decl_table.loc["Qp3", "origin_country"] == "QU"
    insp_issues = dq[dq["table"] == "inspections"]
    assert sorted(insp_issues["column"]) == ["disposal", "hazard_type", "severity"]
    # The feature: offline (from the store) equals what the API scored with.
    offline = build_offline(store.tables()).set_index("declaration_id")
    for key, out in online.items():
        values = _values(out)
        for name in ("decl_dq_issue_cnt_now", "decl_log_weight_now", "decl_transport_mode_code_now",
                     "decl_third_party_cert_flag_now"):  # fmt: skip
            got = offline.loc[key, name]
            want = values[name]
            assert (np.isnan(got) and want is None) or got == pytest.approx(want), (key, name)


def test_text_that_is_not_unicode_is_refused_naming_the_field(decl):
    """A lone surrogate is malformed input (issue 11 item 3), not a value to read as missing."""
    from pydantic import ValidationError

    from serving.schemas import Declaration

    with pytest.raises(ValidationError) as err:
        Declaration.model_validate(decl("sur", transport_mode="\ud800"))
    assert {e["loc"][0] for e in err.value.errors()} == {"transport_mode"}


def test_numeric_attributes_follow_ingests_rule(decl):
    """A mapping's numeric attribute that is not a number: read as missing, reported, as ingest
    does with the same column (``features.ingest.check_columns``)."""
    import pyarrow as pa

    from features.contract import DECLARATIONS
    from features.ingest import check_columns
    from serving.schemas import Declaration

    kinds = {"tax_rate": "numeric", "office_group": "categorical"}
    d = Declaration.model_validate(
        decl("attr", attributes={"tax_rate": "n/a", "office_group": "abc"})
    )
    d.check_attributes(kinds)
    assert [(x.field, x.reason, x.raw) for x in d.data_quality] == [
        ("attributes.tax_rate", "not a number", "n/a")
    ]
    assert d.attributes == {"tax_rate": None, "office_group": "abc"}
    assert d.as_received()["attributes"]["tax_rate"] == "n/a"
    ok = Declaration.model_validate(decl("attr2", attributes={"tax_rate": "8"}))
    ok.check_attributes(kinds)
    assert ok.data_quality == [] and ok.attributes["tax_rate"] == 8.0
    checked = check_columns(
        DECLARATIONS, pa.table({"tax_rate": ["n/a", "8"]}), "Asia/Shanghai", kinds
    )
    assert [(c, r, m.tolist()) for c, r, m in checked.issues] == [
        ("tax_rate", "not a number", [True, False])
    ]
