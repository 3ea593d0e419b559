"""The committee's plan pages and the approved plan driving the monitoring draw, through the
real app (lifespan, SQLite, real keys and sessions) at the real clock: the plan is for the
current local year, so it is in force now."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from policy.plan import PlanConfig, allocate
from serving.plan_inputs import plan_groups
from serving.plan_store import get_plan, plan_events_table, save_plan
from tests.serving.serving_world import AS_OF

TZ = "Asia/Shanghai"


def _login(client, key: str) -> str:
    page = client.get("/committee/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post("/committee/login", data={"api_key": key, "csrf": token,
                    "next": "/committee/plans"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    page = client.get("/committee/plans")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _proposal(client, world) -> str:
    year = pd.Timestamp.now(tz=TZ).year
    groups, ports = plan_groups(world.tables, as_of=AS_OF.to_pydatetime(), config=PlanConfig())
    plan = allocate(groups, 400, year, PlanConfig(), ports)
    return save_plan(client.app.state.engine, plan, "cli:test")


def _score(client, keys, decl, ids, **kw) -> list[bool]:
    out = []
    for i in ids:
        client.app.state.monitoring_quotas.invalidate()  # count every draw before the next
        r = client.post("/v1/score", json=decl(i, **kw),
                        headers={"X-API-Key": keys["inspector"]})  # fmt: skip
        assert r.status_code == 200, r.text
        out.append(r.json()["monitoring_selected"])
    return out


def test_edit_approve_and_the_plan_drives_the_draw(api, world, decl) -> None:
    client, keys, _ = api
    plan_id = _proposal(client, world)
    csrf = _login(client, keys["committee"])
    listing = client.get("/committee/plans")
    assert plan_id in listing.text and 'id="nav-plans"' in listing.text
    page = client.get(f"/committee/plans/{plan_id}")
    assert page.status_code == 200 and "底数" in page.text and "floor" in page.text
    # without an approved plan the bundle's global share applies (1 %: almost nothing drawn)
    before = _score(client, keys, decl, [f"B{i}" for i in range(40)])
    assert sum(before) <= 3
    url = f"/committee/plans/{plan_id}/quotas"
    form = {"csrf": csrf, "quota:03/VN/general_trade": "100000", "quota:03/TH/general_trade": "0",
            "quota:03/CL/general_trade": "3"}  # fmt: skip
    assert client.post(url, data={**form, "csrf": "forged"}).status_code == 403
    bad = client.post(url, data={**form, "quota:03/VN/general_trade": "-1"})
    assert bad.status_code == 422 and "quota must be" in bad.text
    unknown = client.post(url, data={"csrf": csrf, "quota:99/XX/other": "5"})
    assert unknown.status_code == 422 and "unknown plan groups" in unknown.text
    r = client.post(url, data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("edited=3")
    r = client.post(f"/committee/plans/{plan_id}/approve", data={"csrf": csrf},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    plan, lines = get_plan(client.app.state.engine, plan_id)
    assert plan["status"] == "approved" and plan["approved_by"].endswith("(web)")
    assert plan["approved_at"][:10] == datetime.now(UTC).date().isoformat()
    with client.app.state.engine.connect() as conn:
        trail = conn.execute(sa.select(plan_events_table.c.action, plan_events_table.c.actor)
                             .where(plan_events_table.c.plan_id == plan_id)
                             .order_by(plan_events_table.c.id)).all()  # fmt: skip
    assert [a for a, _ in trail] == ["create", "edit", "approve"]
    assert trail[1][1] == trail[2][1] == plan["approved_by"]
    # an approved plan is no longer edited or approved again
    assert client.post(url, data=form).status_code == 409
    assert (
        client.post(f"/committee/plans/{plan_id}/approve", data={"csrf": csrf}).status_code == 409
    )
    # the approved plan drives the draw: a group far behind its quota is drawn at the cap,
    # a group with quota 0 never, a group stops once its quota is met
    vn = _score(client, keys, decl, [f"V{i}" for i in range(40)])
    assert sum(vn) >= 10
    th = _score(client, keys, decl, [f"T{i}" for i in range(40)], origin_country="TH")
    assert sum(th) == 0
    cl = _score(client, keys, decl, [f"C{i}" for i in range(80)], origin_country="CL")
    assert sum(cl) == 3
    # the landing page tracks execution: draws counted from the audit log, results recorded
    client.app.state.warning_tables = world.tables
    drawn_ids = [f"QV{i}" for i, s in enumerate(vn) if s][:4]  # decl() prefixes Q
    for j, did in enumerate(drawn_ids):
        body = {
            "declaration_id": did,
            "inspected_at": datetime.now(UTC).isoformat(),
            "selection": "random",
            "result": "nonconforming" if j == 0 else "conforming",
        }
        if j == 0:
            body |= {"hazard_type": "health", "severity": "major"}
        r = client.post("/v1/inspections", json=body, headers={"X-API-Key": keys["inspector"]})
        assert r.status_code == 201, r.text
    client.app.state.plan_execution_cache = None
    landing = client.get("/committee")
    assert landing.status_code == 200
    assert f'id="exec-drawn">{sum(before) + sum(vn) + 3}<' in landing.text
    panel = landing.text[landing.text.find("plan-execution") :][:1500]
    assert f'id="exec-results">{len(drawn_ids)}<' in landing.text, panel
    row = re.search(r"<tr><td>03/VN/general_trade</td>(.*?)</tr>", landing.text).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[1] == str(sum(before) + sum(vn))  # the default declarations are 03/VN too
    assert cells[2:4] == [str(len(drawn_ids)), "1"]
    assert lines.set_index("group_id").loc["03/VN/general_trade", "quota"] == 100000
