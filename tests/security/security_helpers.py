"""Helpers of the security suite (a module of its own: ``conftest`` is not importable by name
when several test folders have one)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from guomen.settings import Settings
from tests.serving.serving_world import TEST_SECRETS


def with_settings(app: Any, **overrides: Any) -> None:
    """Replace the app's settings before its first session (session policy is built lazily)."""
    db = app.state.settings.database_url
    app.state.settings = Settings(database_url=db, **{**TEST_SECRETS, **overrides})
    if hasattr(app.state, "session_policy"):
        del app.state.session_policy


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def login(client: TestClient, key: str, next_: str = "/committee/warnings") -> Any:
    """Sign in through the login form (double-submit token included); the 303 response."""
    token = csrf_of(client.get("/committee/login").text)
    return client.post("/committee/login", data={"api_key": key, "csrf": token, "next": next_},
                       follow_redirects=False)  # fmt: skip


def inspection(declaration_id: str, **kw: Any) -> dict[str, Any]:
    """A valid ``/v1/inspections`` body: the schema's own example for ``declaration_id``."""
    from serving.schemas import InspectionIn

    example = dict(InspectionIn.model_config["json_schema_extra"]["examples"][0])  # type: ignore[index]
    return {
        **example,
        "declaration_id": declaration_id,
        "inspected_at": "2025-10-29T10:00:00+08:00",
        **kw,
    }
