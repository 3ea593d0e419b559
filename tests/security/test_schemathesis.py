"""Property-based runs over every endpoint: the scoring API's OpenAPI document (no 5xx; status
codes, content types and bodies as documented), and the committee pages' POST forms (no 5xx),
signed in with a valid CSRF token so the handlers run past the checks (issue 11, items 3, 6)."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
import schemathesis
from fastapi.openapi.utils import get_openapi
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from guomen.settings import Settings
from serving.app import create_app
from serving.routes import pages
from tests.live import LiveServer
from tests.security.security_helpers import csrf_of, login
from tests.serving.serving_world import TEST_SECRETS, make_keys
from tests.serving.warnings_app import build_app

BOUNDED = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck),
                   derandomize=True)  # fmt: skip
API_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]  # fmt: skip

# The spec does not depend on the loaded model: built from an app that is never started.
api_schema = schemathesis.openapi.from_dict(create_app(Settings(**TEST_SECRETS)).openapi())


@pytest.fixture(scope="module")
def live_api(world, tmp_path_factory):
    app_settings = world.settings(tmp_path_factory.mktemp("st-api") / "st.db", max_batch=5)
    keys = make_keys(app_settings)
    with LiveServer(create_app(app_settings)) as server:
        server.wait_ready()
        yield server, keys


@api_schema.parametrize()
@BOUNDED
def test_api_answers_as_documented(case, live_api):
    server, keys = live_api
    case.call_and_validate(base_url=server.url, headers={"X-API-Key": keys["admin"]},
                           checks=API_CHECKS)  # fmt: skip


def test_the_openapi_examples_are_accepted_now(live_api):
    """The examples carry a timestamp made at start-up, so they are valid at today's clock."""
    server, keys = live_api
    spec = httpx.get(server.url + "/openapi.json").json()
    schemas = spec["components"]["schemas"]
    declaration = schemas["Declaration"]["examples"][0]
    inspection = schemas["InspectionIn"]["examples"][0]
    declared = datetime.fromisoformat(declaration["declared_at"])
    assert abs(datetime.now(declared.tzinfo) - declared) < timedelta(hours=1)
    headers = {"X-API-Key": keys["inspector"]}
    # a fresh id: the fuzzer may have sent the examples already
    declaration["declaration_id"] = inspection["declaration_id"] = f"EX{uuid.uuid4().hex[:12]}"
    r = httpx.post(server.url + "/v1/score", json=declaration, headers=headers)
    assert r.status_code == 200, r.text
    r = httpx.post(server.url + "/v1/inspections", json=inspection, headers=headers)
    assert r.status_code == 201, r.text
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if op.get("security"):
                assert {"401", "403"} <= set(op["responses"]), (method, path)
            if "requestBody" in op:
                assert {"400", "413", "422"} <= set(op["responses"]), (method, path)
    export = spec["paths"]["/v1/warnings/export"]["get"]["responses"]["200"]["content"]
    assert "text/csv" in export


# ------------------------------------------------------------------ the committee's forms


def _pages_spec() -> dict:
    """The pages are left out of the public document; their forms are documented here only to
    drive the fuzzer."""
    routes = []
    for route in pages.router.routes:
        shown = copy.copy(route)
        shown.include_in_schema = True  # type: ignore[attr-defined]
        routes.append(shown)
    return get_openapi(title="committee pages", version="1", routes=routes)


pages_schema = schemathesis.openapi.from_dict(_pages_spec()).include(method="POST")


@pytest.fixture(scope="module")
def live_pages(tmp_path_factory):
    app, keys = build_app(tmp_path_factory.mktemp("st-pages") / "g.db")
    with LiveServer(app, log_level="warning") as server:
        url = server.url
        client = httpx.Client(base_url=url)
        httpx.post(f"{url}/v1/warnings/propose", json={"as_of": "2024-12-21"},
                   headers={"X-API-Key": keys["committee"]}, timeout=120)  # fmt: skip
        login(client, keys["committee"])  # type: ignore[arg-type]
        token = csrf_of(client.get("/committee/warnings").text)
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        yield url, cookie, token


@pages_schema.parametrize()
@BOUNDED
def test_committee_forms_never_fail_with_a_5xx(case, live_pages):
    url, cookie, token = live_pages
    if isinstance(case.body, dict) and "csrf" in case.body and case.path != "/committee/logout":
        case.body["csrf"] = token  # past the CSRF check, into the handler
    case.call_and_validate(base_url=url, headers={"Cookie": cookie}, checks=[not_a_server_error])
