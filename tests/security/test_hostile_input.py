"""Hostile JSON never gives a 5xx: non-finite numbers, lone surrogates and NUL characters in any
field of the scoring and inspection bodies get a 422 naming the field, over a connection that
stays usable (issue 11, item 3)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
import sqlalchemy as sa

from serving.app import create_app
from serving.audit import inspection_results, score_audit
from tests.live import LiveServer
from tests.security.security_helpers import inspection
from tests.serving.serving_world import make_keys

# raw JSON text of each hostile value (not Python values: ``json.dumps`` would refuse some)
HOSTILE = {
    "nan": "NaN",
    "inf": "Infinity",
    "-inf": "-Infinity",
    "overflow": "1e999",
    "surrogate-escape": '"\\ud800"',
    "surrogate-bytes": '"x\udcff"',  # written below as the raw bytes ED B3 BF
    "nul": '"a\\u0000b"',
}


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _body_with(template: dict, path: tuple, raw: str) -> bytes:
    """``template`` as JSON with the value at ``path`` replaced by the raw JSON text ``raw``."""
    marker = "__HOSTILE__"
    doc = json.loads(json.dumps(template))
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = marker
    return _encode(json.dumps(doc, ensure_ascii=False).replace(f'"{marker}"', raw))


def _inspection(declaration_id: str) -> dict:
    return inspection(declaration_id)


def _cases(decl):
    one = decl("H1")
    one["attributes"] = {"grade": "A"}
    for field in one:
        yield "/v1/score", one, (field,)
    yield "/v1/score", one, ("attributes", "grade")
    batch = {"declarations": [decl("H2"), decl("H3")]}
    for field in decl("H2"):
        yield "/v1/score/batch", batch, ("declarations", 1, field)
    for field in _inspection("H1"):
        yield "/v1/inspections", _inspection("H1"), (field,)


def test_every_field_of_every_body_gets_a_422_naming_it(api, decl):
    client, keys, _ = api
    headers = {"X-API-Key": keys["inspector"], "content-type": "application/json"}
    seen = 0
    for url, template, path in _cases(decl):
        for name, raw in HOSTILE.items():
            r = client.post(url, content=_body_with(template, path, raw), headers=headers)
            assert r.status_code == 422, (url, path, name, r.status_code, r.text[:300])
            detail = r.json()["detail"]
            assert isinstance(detail, list) and detail, r.text
            assert all({"loc", "msg", "type"} <= set(d) for d in detail)
            assert any(tuple(d["loc"]) == ("body", *path) for d in detail), (url, path, detail)
            seen += 1
    assert seen == len(list(_cases(decl))) * len(HOSTILE) > 200
    # nothing of it was scored or stored
    with client.app.state.engine.connect() as conn:
        for table in (score_audit, inspection_results):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0


def test_a_hostile_key_inside_attributes_is_refused(api, decl):
    client, keys, _ = api
    body = _encode(json.dumps(decl("H4"))[:-1] + ', "attributes": {"\\ud800": "x"}}')
    r = client.post("/v1/score", content=body, headers={"X-API-Key": keys["inspector"],
                    "content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "attributes"]


def test_words_that_look_hostile_inside_strings_are_fine(api, decl):
    client, keys, _ = api
    body = decl("H5", goods_description="NaN Infinity 1e999 from Nanjing")
    r = client.post("/v1/score", json=body, headers={"X-API-Key": keys["inspector"]})
    assert r.status_code == 200, r.text


@pytest.fixture()
def live(world, tmp_path):
    settings = world.settings(tmp_path / "live.db")
    keys = make_keys(settings)
    with LiveServer(create_app(settings)) as server:
        server.wait_ready()
        yield server, keys


def test_the_keep_alive_connection_survives_a_hostile_request(live, decl):
    server, keys = live
    headers = {"X-API-Key": keys["inspector"], "content-type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        for i, raw in enumerate(HOSTILE.values()):
            bad = client.post(
                "/v1/score", content=_body_with(decl(f"K{i}"), ("net_weight_kg",), raw)
            )
            assert bad.status_code == 422 and bad.headers.get("connection") != "close"
            good = client.post("/v1/score", json=decl(f"K{i}"))
            assert good.status_code == 200, good.text
    # and on one raw socket: the bad answer, then the good one on the same connection
    host, port = "127.0.0.1", server.port
    bad_body = _body_with(decl("S1"), ("declared_value",), "NaN")
    good_body = json.dumps(decl("S2")).encode()
    with socket.create_connection((host, port), timeout=30) as sock:
        stream = sock.makefile("rb")
        for body, want in ((bad_body, 422), (good_body, 200)):
            sock.sendall(
                b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"X-API-Key: {keys['inspector']}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status = int(stream.readline().split()[1])
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            stream.read(length)
            assert status == want


def test_nul_in_a_path_is_a_404(api):
    client, keys, _ = api
    assert client.get("/committee/static/%00").status_code == 404
    assert client.get("/committee/static/a%00b.css").status_code == 404
    r = client.get("/v1/enterprises/E%00", headers={"X-API-Key": keys["committee"]})
    assert r.status_code == 404


def test_committee_assets_are_cached_under_the_pages_csp(api):
    client, _, _ = api
    r = client.get("/committee/static/committee.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert r.headers["cache-control"] == "max-age=3600"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    again = client.get(
        "/committee/static/committee.css", headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304
    missing = client.get("/committee/static/nope.css")
    assert missing.status_code == 404 and "<html" in missing.text  # the pages' error page
    assert client.post("/committee/static/committee.css").status_code == 405


def test_validation_errors_keep_their_form_per_area(api):
    """The pages' HTML error page and the API's JSON list both stand with the safe handler."""
    from tests.security.security_helpers import login

    client, keys, _ = api
    r = client.get("/v1/warnings", params={"level": "x"}, headers={"X-API-Key": keys["committee"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "level"]
    login(client, keys["committee"])
    r = client.get("/committee/warnings", params={"level": "x"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html"), r.text[:200]
