"""The auth matrix over every route of the app and every principal: no key, a wrong key, a
revoked key, and each role; for the committee pages no session, a forged one, and a session of
each role that can sign in. Routes are read from the app's router, so a new route is covered
the day it is added (and must be classified below if it fits no rule) (issue 11, item 6)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.auth import revoke_key
from serving.sessions import SESSION_COOKIE
from tests.security.security_helpers import login

PUBLIC = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz", "/readyz",
          "/metrics", "/committee/login", "/committee/static/{name}"}  # fmt: skip
INSPECT = frozenset({"inspector", "admin"})
COMMITTEE = frozenset({"committee", "admin"})
ADMIN = frozenset({"admin"})
# exact paths first, then prefixes; "page" = a committee session of COMMITTEE roles
EXACT: dict[str, Any] = {"/v1/score": INSPECT, "/v1/score/batch": INSPECT,
                         "/v1/inspections": INSPECT, "/v1/model": COMMITTEE,
                         "/v1/admin/reload": ADMIN}  # fmt: skip
PREFIXES: tuple[tuple[str, Any], ...] = (("/v1/keys", ADMIN), ("/v1/warnings", COMMITTEE),
                                         ("/v1/enterprises", COMMITTEE), ("/committee", "page"))  # fmt: skip
ROLES = ("inspector", "committee", "admin")


def expected(path: str) -> Any:
    if path in PUBLIC:
        return "public"
    if path in EXACT:
        return EXACT[path]
    for prefix, rule in PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return rule
    raise AssertionError(f"route {path} is in no row of the auth matrix: classify it")


def routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route, included routers expanded."""
    out = []

    def walk(items):
        for r in items:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes)
            else:
                for m in sorted(getattr(r, "methods", None) or ()):
                    if m != "HEAD":
                        out.append((m, r.path))

    walk(app.router.routes)
    return out


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def call(client: TestClient, method: str, path: str, **kw: Any):
    body = (
        {"json": {}}
        if method in ("POST", "PUT", "PATCH") and not path.startswith("/committee")
        else {}
    )
    if method == "POST" and path.startswith("/committee"):
        body = {"data": {"csrf": "x", "as_of": "2024-12-21", "reason": "matrix"}}
    return client.request(method, concrete(path), follow_redirects=False, **body, **kw)


def _to_login(r) -> bool:
    return r.status_code == 303 and r.headers["location"].startswith("/committee/login")


def test_every_route_is_classified_and_the_matrix_holds(api):
    client, keys, _ = api
    app = client.app
    table = routes(app)
    assert len(table) > 30 and ("POST", "/v1/score") in table
    checked = 0
    for method, path in table:
        rule = expected(path)
        if rule == "public":
            r = call(client, method, path)
            assert r.status_code not in (401, 403) and not _to_login(r), (
                method,
                path,
                r.status_code,
            )
        elif rule == "page":
            client.cookies.clear()
            assert _to_login(call(client, method, path)), (method, path)
            client.cookies.set(SESSION_COOKIE, "forged.value.sig", path="/committee")
            assert _to_login(call(client, method, path)), (method, path)
            client.cookies.clear()
        else:
            assert call(client, method, path).status_code == 401, (method, path)
            bad = {"X-API-Key": "gmk_" + "A" * 43}
            assert call(client, method, path, headers=bad).status_code == 401, (method, path)
            for role in ROLES:
                r = call(client, method, path, headers={"X-API-Key": keys[role]})
                if role in rule:
                    assert r.status_code not in (401, 403), (method, path, role, r.text[:200])
                    assert r.status_code < 500, (method, path, role, r.text[:200])
                else:
                    assert r.status_code == 403, (method, path, role, r.status_code)
        checked += 1
    assert checked == len(table)


@pytest.mark.parametrize("role", ROLES)
def test_page_sessions_by_role(pages, role):
    app, client, keys = pages
    r = login(client, keys[role])
    if role == "inspector":  # may not sign in to the pages at all
        assert r.headers["location"] == "/committee/login?error=1"
        assert SESSION_COOKIE not in client.cookies
        return
    assert r.headers["location"] == "/committee/warnings"
    for method, path in routes(app):
        if expected(path) != "page":
            continue
        r = call(client, method, path)
        assert not _to_login(r), (method, path)
        if method == "POST":  # a session alone is not enough: the form's CSRF token is checked
            assert r.status_code == 403, (method, path, r.status_code)
        else:
            assert r.status_code < 500, (method, path, r.status_code, r.text[:200])


def test_a_revoked_key_is_refused_everywhere_at_once(api):
    client, keys, _ = api
    assert client.get("/v1/warnings", headers={"X-API-Key": keys["committee"]}).status_code == 200
    revoke_key(client.app.state.engine, keys["committee"][:12])
    for method, path in routes(client.app):
        rule = expected(path)
        if isinstance(rule, frozenset) and "committee" in rule:
            r = call(client, method, path, headers={"X-API-Key": keys["committee"]})
            assert r.status_code == 401, (method, path, r.status_code)
