"""Warnings JSON API and committee pages over HTTP (FastAPI TestClient, real SQLite database)."""

from __future__ import annotations

import csv
import io
import re

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from policy.warnings import retitle
from serving.decisions import decide
from serving.sessions import SESSION_COOKIE
from serving.warnings_store import EXPORT_FIELDS, transitions_table
from tests.serving.warnings_app import build_app, new_declaration

AS_OF = "2024-12-21"  # 355 days into the synthetic data: the outbreak is under way


@pytest.fixture()
def ctx(tmp_path):
    app, keys = build_app(tmp_path / "g.db")
    with TestClient(app) as client:
        yield app, client, keys


def h(keys, role="committee"):
    return {"X-API-Key": keys[role]}


def _propose(client, keys):
    r = client.post("/v1/warnings/propose", json={"as_of": AS_OF}, headers=h(keys))
    assert r.status_code == 200, r.text
    return r.json()


def test_roles(ctx):
    _, client, keys = ctx
    assert client.get("/v1/warnings").status_code == 401
    assert client.get("/v1/warnings", headers={"X-API-Key": "gmk_" + "x" * 40}).status_code == 401
    assert client.get("/v1/warnings", headers=h(keys, "inspector")).status_code == 403
    assert client.get("/v1/warnings", headers=h(keys, "admin")).status_code == 200
    assert client.get("/v1/warnings", headers=h(keys)).json() == []


def test_propose_approve_and_the_decision_hook_makes_matching_declarations_mandatory(ctx):
    app, client, keys = ctx
    made = _propose(client, keys)
    [w] = [x for x in made if x["subject_key"] == "0303/VN"]
    assert w["status"] == "proposed" and w["level"] in (1, 2)
    # proposing again the same day stores nothing new
    assert _propose(client, keys) == []
    provider = app.state.measure_provider
    decl = new_declaration(7)
    before = decide(decl, "low", credit_rating=None, measures=provider(), secret="s",
                    monitoring_share=0.0)  # fmt: skip
    assert before.decision == "release"

    r = client.post(f"/v1/warnings/{w['id']}/approve", json={"reason": "confirmed"},
                    headers=h(keys))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "active" and body["activated_at"]
    assert [t["action"] for t in body["transitions"]] == ["propose", "approve", "activate"]
    assert all(t["actor"].startswith("gmk_") for t in body["transitions"][1:])

    after = decide(decl, "low", credit_rating=None, measures=provider(), secret="s",
                   monitoring_share=0.0)  # fmt: skip
    assert after.decision == "mandatory" and after.warnings == (w["id"],)
    other = decide(new_declaration(8, origin_country="DE"), "low", credit_rating=None,
                   measures=provider(), secret="s", monitoring_share=0.0)  # fmt: skip
    assert other.decision == "release"


def test_invalid_transitions_get_409_and_lifting_needs_a_reason_or_evaluation(ctx):
    app, client, keys = ctx
    [w] = [x for x in _propose(client, keys) if x["subject_key"] == "0303/VN"]
    wid = w["id"]
    assert client.post(f"/v1/warnings/{wid}/lift", json={"reason": "x"},
                       headers=h(keys)).status_code == 409  # fmt: skip
    r = client.post(f"/v1/warnings/{wid}/approve", json={"start_at": "2024-12-22T00:00:00Z"},
                    headers=h(keys))  # fmt: skip
    assert r.status_code == 200 and r.json()["activated_at"].startswith("2024-12-22")
    assert client.post(f"/v1/warnings/{wid}/approve", headers=h(keys)).status_code == 409
    assert client.post(f"/v1/warnings/{wid}/reject", json={"reason": "late"},
                       headers=h(keys)).status_code == 409  # fmt: skip
    # no reason, no evaluation
    assert client.post(f"/v1/warnings/{wid}/lift", headers=h(keys)).status_code == 409
    # an evaluation that does not pass (the synthetic outbreak never ends) and no reason
    r = client.post(f"/v1/warnings/{wid}/lift", json={"evaluate": True, "as_of": "2025-02-03"},
                    headers=h(keys))  # fmt: skip
    assert r.status_code == 409 and "evaluation" in r.json()["detail"]
    level = w["level"]
    r = client.post(f"/v1/warnings/{wid}/de-escalate", json={"reason": "fewer critical"},
                    headers=h(keys))  # fmt: skip
    assert r.status_code == 200 and r.json()["level"] == level + 1
    # the published title names the level in force, and the publication type follows it
    assert r.json()["title"] == retitle(w["title"], level + 1) != w["title"]
    r = client.post(f"/v1/warnings/{wid}/escalate", json={"reason": "worse again"},
                    headers=h(keys))  # fmt: skip
    assert r.json()["level"] == level and r.json()["title"] == w["title"]
    ev = client.get(f"/v1/warnings/{wid}/evaluation", params={"as_of": "2025-02-03"},
                    headers=h(keys)).json()  # fmt: skip
    assert ev["inspected"] > 0 and ev["passed"] is False
    r = client.post(f"/v1/warnings/{wid}/lift",
                    json={"reason": "supplier delisted by the origin authority", "evaluate": True,
                          "as_of": "2025-02-03"}, headers=h(keys))  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "lifted"
    last = r.json()["transitions"][-1]
    assert last["action"] == "lift" and last["reason"].startswith("supplier")
    assert last["evaluation"]["inspected"] == ev["inspected"]
    assert client.post(f"/v1/warnings/{wid}/escalate", headers=h(keys)).status_code == 409
    assert app.state.measure_provider() == []
    with app.state.engine.connect() as conn:
        rows = conn.execute(
            transitions_table.select().where(transitions_table.c.warning_id == wid)
        ).all()
    assert [r.action for r in rows] == [
        "propose", "approve", "activate", "de-escalate", "escalate", "lift"
    ]  # fmt: skip
    assert all(r.at is not None and r.actor for r in rows)


def test_unknown_warning_is_404_and_bad_input_422(ctx):
    _, client, keys = ctx
    assert client.get("/v1/warnings/nope", headers=h(keys)).status_code == 404
    assert client.post("/v1/warnings/nope/approve", headers=h(keys)).status_code == 404
    assert client.post("/v1/warnings/nope/explode", headers=h(keys)).status_code == 422
    r = client.post("/v1/warnings/propose", json={"as_of": "not a date"}, headers=h(keys))
    assert r.status_code == 422
    [w] = [x for x in _propose(client, keys) if x["subject_key"] == "0303/VN"]
    r = client.get(f"/v1/warnings/{w['id']}/evaluation", params={"as_of": "2024-13-45"},
                   headers=h(keys))  # fmt: skip
    assert r.status_code == 422
    r = client.post(f"/v1/warnings/{w['id']}/lift", json={"evaluate": True, "as_of": "soon"},
                    headers=h(keys))  # fmt: skip
    assert r.status_code == 422
    body = {"subject_kind": "hs4_origin", "subject_key": "0303", "as_of": AS_OF, "reason": "xyz"}
    assert client.post("/v1/warnings/manual", json=body, headers=h(keys)).status_code == 422


def test_manual_proposal(ctx):
    _, client, keys = ctx
    body = {"subject_kind": "enterprise", "subject_key": "E005", "as_of": AS_OF,
            "reason": "customs intelligence"}  # fmt: skip
    r = client.post("/v1/warnings/manual", json=body, headers=h(keys))
    assert r.status_code == 422  # no evidence and no level given
    r = client.post("/v1/warnings/manual", json={**body, "level": 3}, headers=h(keys))
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["level"] == 3 and w["subject_label"].endswith("E005")
    assert any(m["type"] == "tightened_inspection" for m in w["measures"])
    assert client.post("/v1/warnings/manual", json={**body, "level": 3},
                       headers=h(keys)).status_code == 409  # fmt: skip


def test_export_json_and_csv_follow_the_documented_schema(ctx):
    _, client, keys = ctx
    made = _propose(client, keys)
    client.post(f"/v1/warnings/{made[0]['id']}/approve", headers=h(keys))
    j = client.get("/v1/warnings/export", headers=h(keys)).json()
    assert j["schema"] == "guomen.warnings/1" and j["fields"] == list(EXPORT_FIELDS)
    assert len(j["warnings"]) == len(made)
    assert all(set(r) == set(EXPORT_FIELDS) for r in j["warnings"])
    active = [r for r in j["warnings"] if r["status"] == "active"]
    assert active and active[0]["start_time"]
    r = client.get("/v1/warnings/export", params={"format": "csv"}, headers=h(keys))
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert list(rows[0]) == list(EXPORT_FIELDS) and len(rows) == len(made)
    assert {x["id"] for x in rows} == {x["id"] for x in j["warnings"]}


# ---------------------------------------------------------------------------- pages


def _login(client, key):
    page = client.get("/committee/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/committee/login", data={"api_key": key, "csrf": token,
                       "next": "/committee/warnings"}, follow_redirects=False)  # fmt: skip


def test_pages_need_a_session_and_login_sets_a_safe_cookie(ctx):
    _, client, keys = ctx
    r = client.get("/committee/warnings", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/committee/login")
    bad = _login(client, keys["inspector"])
    assert bad.headers["location"] == "/committee/login?error=1"
    assert SESSION_COOKIE not in client.cookies
    r = _login(client, keys["committee"])
    assert r.status_code == 303 and r.headers["location"] == "/committee/warnings"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Max-Age" in cookie and keys["committee"] not in cookie
    assert client.get("/committee/warnings").status_code == 200


def test_login_without_the_double_submit_token_is_refused(ctx):
    _, client, keys = ctx
    r = client.post("/committee/login", data={"api_key": keys["committee"], "csrf": "forged"})
    assert r.status_code == 403


def test_forms_need_the_csrf_token_and_a_tampered_cookie_is_rejected(ctx):
    _, client, keys = ctx
    [w] = [x for x in _propose(client, keys) if x["subject_key"] == "0303/VN"]
    _login(client, keys["committee"])
    page = client.get(f"/committee/warnings/{w['id']}")
    assert page.status_code == 200 and "批准" in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    url = f"/committee/warnings/{w['id']}/approve"
    assert client.post(url, data={"reason": "ok"}, follow_redirects=False).status_code == 403
    assert client.post(url, data={"csrf": "0" * 64}, follow_redirects=False).status_code == 403
    r = client.post(url, data={"csrf": token, "reason": "ok"}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get(f"/v1/warnings/{w['id']}", headers=h(keys)).json()["status"] == "active"
    # the same form again: refused with 409 and a page that says why
    r = client.post(url, data={"csrf": token})
    assert r.status_code == 409 and "cannot approve" in r.text
    value = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"),
                       path="/committee")  # fmt: skip
    r = client.get("/committee/warnings", follow_redirects=False)
    assert r.status_code == 303


def test_revoking_the_key_ends_its_sessions(ctx):
    app, client, keys = ctx
    from serving.auth import revoke_key

    _login(client, keys["committee"])
    assert client.get("/committee/warnings").status_code == 200
    revoke_key(app.state.engine, keys["committee"][:12])
    assert client.get("/committee/warnings", follow_redirects=False).status_code == 303


def test_every_page_renders(ctx):
    _, client, keys = ctx
    made = _propose(client, keys)
    _login(client, keys["admin"])
    for url in (
        "/committee/warnings",
        "/committee/warnings?status=proposed&level=1",
        f"/committee/warnings/{made[0]['id']}",
        "/committee/model",
        "/committee/declarations/D000010",
        "/committee/enterprises/E001",
        "/committee/static/committee.css",
    ):
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:300])
    assert client.get("/committee/static/..%2Fapp.py").status_code == 404
    assert client.get("/committee/declarations/NOPE").status_code == 404
    detail = client.get(f"/committee/warnings/{made[0]['id']}").text
    assert "<svg" in detail and 'id="trend-chart"' in detail


def test_cli_propose_list_export(tmp_path, monkeypatch):
    """`guomen warnings propose/list/export` against a real ingested store."""
    from typer.testing import CliRunner

    from features.store import Store
    from guomen.cli import app as cli
    from guomen.settings import get_settings
    from tests.serving.warnings_app import make_tables

    tables = make_tables()
    src = tmp_path / "src"
    src.mkdir()
    for name in ("declarations", "inspections", "risk_signals"):
        tables[name].to_parquet(src / f"{name}.parquet", index=False)
    from features.ingest import ingest

    ingest(src, tmp_path / "store")
    assert len(Store(tmp_path / "store").tables()["inspections"]) == len(tables["inspections"])
    monkeypatch.setenv("GUOMEN_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("GUOMEN_STORE_DIR", str(tmp_path / "store"))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        r = runner.invoke(cli, ["warnings", "propose", "--as-of", AS_OF])
        assert r.exit_code == 0, r.output
        assert "0303/VN" in r.output and "1 new proposal(s)" in r.output
        r = runner.invoke(cli, ["warnings", "list", "--status", "proposed"])
        assert r.exit_code == 0 and "1 warning(s)" in r.output
        out = tmp_path / "w.csv"
        r = runner.invoke(cli, ["warnings", "export", "--format", "csv", "--out", str(out)])
        assert r.exit_code == 0
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
        assert len(rows) == 1 and rows[0]["subject_key"] == "0303/VN"
        r = runner.invoke(cli, ["warnings", "export", "--format", "xml"])
        assert r.exit_code != 0
    finally:
        get_settings.cache_clear()


def test_a_rejected_subject_is_not_re_proposed_during_the_cool_down(ctx):
    _, client, keys = ctx
    [w] = [x for x in _propose(client, keys) if x["subject_key"] == "0303/VN"]
    r = client.post(f"/v1/warnings/{w['id']}/reject", json={"reason": "not convinced"},
                    headers=h(keys))  # fmt: skip
    assert r.status_code == 200, r.text
    # A week later the same evidence (not worse) must not bring the subject back.
    later = client.post("/v1/warnings/propose", json={"as_of": "2024-12-28"}, headers=h(keys))
    assert later.status_code == 200, later.text
    again = [x for x in later.json() if x["subject_key"] == "0303/VN" and x["level"] >= w["level"]]
    assert again == []


def test_the_record_lists_past_warnings_with_what_followed(ctx):
    from serving.warning_record import RECORD_FIELDS

    app, client, keys = ctx
    assert client.get("/committee/warnings/record", follow_redirects=False).status_code == 303
    made = _propose(client, keys)
    [w] = [x for x in made if x["subject_key"] == "0303/VN"]
    wid = w["id"]
    client.post(f"/v1/warnings/{wid}/approve", json={"start_at": "2024-12-22T00:00:00Z"},
                headers=h(keys))  # fmt: skip
    r = client.post(f"/v1/warnings/{wid}/lift", json={"reason": "supplier delisted"},
                    headers=h(keys))  # fmt: skip
    assert r.status_code == 200
    others = [x["id"] for x in made if x["id"] != wid]
    for other in others:  # rejected proposals are part of the record too
        client.post(f"/v1/warnings/{other}/reject", json={"reason": "noise"}, headers=h(keys))
    _login(client, keys["committee"])
    page = client.get("/committee/warnings/record")
    assert page.status_code == 200 and 'id="record-table"' in page.text
    assert "lifted with reason" in page.text and "supplier delisted" in page.text
    export = client.get("/committee/warnings/record.csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert tuple(rows[0]) == RECORD_FIELDS and len(rows) == 1 + len(others)
    [mine] = [x for x in rows if x["id"] == wid]
    assert mine["outcome"] == "lifted with reason" and mine["lifted_by_evaluation"] == "False"
    # results of matching declarations while the measure was in force (synthetic outbreak)
    assert int(mine["inspected_during"]) >= 0 and mine["activated_at"] == "2024-12-22"
    assert {x["outcome"] for x in rows if x["id"] != wid} <= {"rejected"}
    # a warning id page still answers beside the record
    assert client.get(f"/committee/warnings/{wid}").status_code == 200


def _two_report_notice(client, keys):
    """The Ⅳ notice that two independent reports about 8516/DE make on 2024-07-22."""
    r = client.post("/v1/warnings/propose", json={"as_of": "2024-07-22"}, headers=h(keys))
    [w] = [x for x in r.json() if x["subject_key"] == "8516/DE"]
    return w


def _notice_app(db):
    from tests.serving.warnings_app import make_tables, reports, with_reports

    two = reports(2, 196, "851610", "DE", ["foreign_alert", "public_opinion"],
                  ["RASFF", "Weibo"], "N")  # fmt: skip
    return build_app(db, with_reports(make_tables(), two))


def test_an_early_notice_is_stored_report_driven_and_lapses_at_a_later_propose(tmp_path):
    app, keys = _notice_app(tmp_path / "n.db")
    with TestClient(app) as client:
        w = _two_report_notice(client, keys)
        assert w["level"] == 4 and w["assessment"]["report_driven"]
        assert "awaiting results" in w["matters"]
        # the committee cannot lapse it by hand; the review does, once the period is over
        lapse = client.post(f"/v1/warnings/{w['id']}/lapse", json={"reason": "x"},
                            headers=h(keys))  # fmt: skip
        assert lapse.status_code == 422  # not an action of the committee
        client.post("/v1/warnings/propose", json={"as_of": "2024-08-19"}, headers=h(keys))
        assert client.get(f"/v1/warnings/{w['id']}", headers=h(keys)).json()["status"] == "proposed"
        client.post("/v1/warnings/propose", json={"as_of": "2024-09-03"}, headers=h(keys))
        got = client.get(f"/v1/warnings/{w['id']}", headers=h(keys)).json()
        assert got["status"] == "lapsed"
        last = got["transitions"][-1]
        assert last["action"] == "lapse" and last["actor"] == "notice-review"
        # the record says what the notice's own test of its results found
        assert "results since the notice" in last["reason"] and "FDR" in last["reason"]
        listed = client.get("/v1/warnings", params={"status": "lapsed"}, headers=h(keys)).json()
        assert [x["id"] for x in listed] == [w["id"]]
        _login(client, keys["committee"])
        assert "lapsed" in client.get("/committee/warnings/record").text
        # it ended at the review that lapsed it (2024-09-03), not when that review was recorded
        # (today): the results "during" stop there too
        rows = csv.DictReader(io.StringIO(client.get("/committee/warnings/record.csv").text))
        [mine] = [x for x in rows if x["id"] == w["id"]]
        assert mine["ended_at"] == "2024-09-03"


def test_proposals_carry_the_newest_rescoring_runs_model_scores(tmp_path):
    """The assessment's model-score line reads ``guomen rescore``'s scored declarations (it
    said "not given" on every warning: nothing handed the scores to the propose routes)."""
    from tests.serving.warnings_app import make_tables

    tables = make_tables()
    app, keys = build_app(tmp_path / "s.db", tables)
    with TestClient(app) as client:
        [before] = [x for x in _propose(client, keys) if x["subject_key"] == "0303/VN"]
        assert before["assessment"]["mean_score"] is None
    decl = tables["declarations"]
    hot = (decl["hs_code"].str[:4] == "0303") & (decl["origin_country"] == "VN")
    scored = tmp_path / "data" / "rescore" / "2024-12-31" / "scored"
    scored.mkdir(parents=True)
    pd.DataFrame(
        {"declaration_id": decl["declaration_id"].astype(str), "probability": hot * 0.6 + 0.1}
    ).to_parquet(scored / "part-00000.parquet")
    app, keys = build_app(tmp_path / "s2.db", tables)
    with TestClient(app) as client:
        [w] = [x for x in _propose(client, keys) if x["subject_key"] == "0303/VN"]
        assert w["assessment"]["mean_score"] == pytest.approx(0.7)
        assert w["assessment"]["score_ratio"] > 1
        _login(client, keys["committee"])
        page = client.get(f"/committee/warnings/{w['id']}").text
        assert "mean 70" in page and "not given" not in page
        body = {"subject_kind": "hs4", "subject_key": "0303", "as_of": AS_OF,
                "reason": "by hand", "level": 4}  # fmt: skip
        hand = client.post("/v1/warnings/manual", json=body, headers=h(keys)).json()
        assert hand["assessment"]["mean_score"] is not None  # by hand too


def test_a_stored_notice_is_lifted_on_evaluation_only_once_results_confirmed_it(tmp_path):
    app, keys = _notice_app(tmp_path / "c.db")
    with TestClient(app) as client:
        w = _two_report_notice(client, keys)
        ok = client.post(f"/v1/warnings/{w['id']}/approve", json={"reason": "notice"},
                         headers=h(keys))  # fmt: skip
        assert ok.status_code == 200
        q = {"as_of": "2024-08-19", "threshold": 1.0}
        ev = client.get(f"/v1/warnings/{w['id']}/evaluation", params=q, headers=h(keys)).json()
        assert ev["awaiting_confirmation"] is True and ev["passed"] is False
        lift = client.post(f"/v1/warnings/{w['id']}/lift", headers=h(keys),
                           json={"evaluate": True, "as_of": "2024-08-19", "threshold": 1.0})  # fmt: skip
        assert lift.status_code == 409  # no passing evaluation; a recorded reason still lifts
        store = app.state.warning_store
        assert [x["id"] for x in store.pending_notices()] == [w["id"]]
        store.apply(w["id"], "confirm", "notice-review", "results confirm the notice",
                    {"as_of": "2024-08-12T00:00:00+00:00"})  # fmt: skip
        got = client.get(f"/v1/warnings/{w['id']}", headers=h(keys)).json()
        assert got["confirmed_at"] == "2024-08-12T00:00:00+00:00"
        assert store.pending_notices() == []
        ev = client.get(f"/v1/warnings/{w['id']}/evaluation", params=q, headers=h(keys)).json()
        assert ev["awaiting_confirmation"] is False
        assert ev["passed"] is (ev["inspected"] >= ev["min_inspected"])


def test_fresh_reports_on_an_open_warning_are_recorded_for_the_committee(tmp_path):
    """A subject under a warning is not proposed again; fresh reports that would make a notice
    on their own are put on the open warning (transition fresh-evidence, once a window)."""
    from tests.serving.warnings_app import make_tables, reports, with_reports

    two = reports(2, 196, "851610", "DE", ["foreign_alert", "public_opinion"],
                  ["RASFF", "Weibo"], "N")  # fmt: skip
    later = reports(5, 205, "851610", "DE", ["foreign_alert", "recall", "consumer_complaint"],
                    ["Safety Gate", "SAMR", "12315"], "L")  # fmt: skip
    app, keys = build_app(tmp_path / "f.db", with_reports(make_tables(), two, later))
    with TestClient(app) as client:
        r = client.post("/v1/warnings/propose", json={"as_of": "2024-07-22"}, headers=h(keys))
        [w] = [x for x in r.json() if x["subject_key"] == "8516/DE"]
        ok = client.post(f"/v1/warnings/{w['id']}/approve", json={"reason": "notice"},
                         headers=h(keys))  # fmt: skip
        assert ok.status_code == 200
        for as_of in ("2024-08-12", "2024-08-19", "2024-08-26"):
            made = client.post("/v1/warnings/propose", json={"as_of": as_of}, headers=h(keys))
            assert "8516/DE" not in {x["subject_key"] for x in made.json()}  # still open
        got = client.get(f"/v1/warnings/{w['id']}", headers=h(keys)).json()
        fresh = [t for t in got["transitions"] if t["action"] == "fresh-evidence"]
        assert len(fresh) == 1  # 08-12 is within a window of the notice; then once a window
        assert fresh[0]["actor"] == "notice-review" and "fresh evidence" in fresh[0]["reason"]
        assert fresh[0]["evaluation"]["as_of"].startswith("2024-08-19")
        assert fresh[0]["evaluation"]["signals"] >= 2
        assert (got["status"], got["level"]) == ("active", w["level"])  # the committee decides
        # not an action of the committee
        by_hand = client.post(f"/v1/warnings/{w['id']}/fresh-evidence", json={"reason": "x"},
                              headers=h(keys))  # fmt: skip
        assert by_hand.status_code == 422
        # the committee's record shows it
        _login(client, keys["committee"])
        csv_rows = client.get("/committee/warnings/record.csv").text.splitlines()
        header = csv_rows[0].split(",")
        [mine] = [row.split(",") for row in csv_rows[1:] if row.startswith(w["id"])]
        assert mine[header.index("fresh_evidence")] == "1"
        assert "fresh evidence ×1" in client.get("/committee/warnings/record").text


def test_measures_are_re_read_once_when_they_expire_not_by_every_caller(ctx):
    """The measure cache on expiry: one caller re-reads the database, the others meanwhile
    keep the list of a moment ago (no herd of identical queries); a change made in this
    process is seen by every caller at once."""
    import threading
    import time

    app, client, keys = ctx
    provider = app.state.measure_provider
    store = provider.store
    real = store.active_measures
    calls = []

    def slow_read():  # the real query, made slow enough for callers to overlap
        calls.append(1)
        time.sleep(0.2)
        return real()

    store.active_measures = slow_read
    provider.ttl_seconds = 0.05
    time.sleep(0.1)
    assert provider() == [] and len(calls) == 1  # expired: re-read
    time.sleep(0.1)  # expired
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(provider())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 16 and all(g == [] for g in got)
    assert len(calls) == 2  # one re-read for sixteen callers
    # an approval in this process: the very next call sees its measure
    [w] = [x for x in _propose(client, keys) if x["subject_key"] == "0303/VN"]
    r = client.post(f"/v1/warnings/{w['id']}/approve", json={"reason": "ok"}, headers=h(keys))
    assert r.status_code == 200
    assert [m.warning_id for m in provider()] == [w["id"]]
