"""Property-based run over the OpenAPI spec: no 5xx, responses match their schemas."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from guomen.settings import Settings
from serving.app import create_app
from tests.serving.serving_world import TEST_SECRETS


@pytest.fixture(scope="module")
def live_api(world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schemathesis")
    app_settings = world.settings(tmp / "st.db", max_batch=5)
    keys = world.make_keys(app_settings)
    with world.live_server(create_app(app_settings)) as server:
        server.wait_ready()
        yield server, keys


# The spec does not depend on the loaded model: build it from an app that is never started.
schema = schemathesis.openapi.from_dict(create_app(Settings(**TEST_SECRETS)).openapi())


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_error_and_schema_conformance(case, live_api):
    server, keys = live_api
    case.call_and_validate(
        base_url=server.url,
        headers={"X-API-Key": keys["inspector"]},
        checks=[not_a_server_error, response_schema_conformance],
    )
