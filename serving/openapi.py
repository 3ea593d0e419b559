"""The published OpenAPI document, completed where FastAPI cannot know the answers.

* Every operation behind an API key documents its 401 and 403; every operation with a body its
  400 (malformed body) and 413 (body over ``Settings.max_body_bytes``); every operation with a
  path parameter its 404, all as ``ErrorBody``.
* The warnings export documents its ``text/csv`` answer.
* The example declaration and inspection carry a timestamp of *now* (set when the document is
  first built, i.e. at start-up): a fixed date would fall behind the snapshot and the example
  itself would be refused.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
DOCUMENTED_ERRORS = {
    "401": "missing or invalid API key",
    "403": "the key's role may not do this",
}
BODY_ERRORS = {
    "400": "malformed request body",
    "413": "request body too large",
}
TIME_FIELDS = ("declared_at", "inspected_at")
CSV_PATHS = ("/v1/warnings/export",)
EXAMPLE_TZ = timezone(timedelta(hours=8))  # the offices' local time, as in the examples


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _fresh_examples(node: Any, now: str) -> None:
    """Set every example's ``declared_at`` / ``inspected_at`` to ``now`` (in place)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("example", "examples"):
                for example in value if isinstance(value, list) else [value]:
                    if isinstance(example, dict):
                        for field in TIME_FIELDS:
                            if field in example:
                                example[field] = now
            _fresh_examples(value, now)
    elif isinstance(node, list):
        for item in node:
            _fresh_examples(item, now)


def complete_openapi(spec: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """``spec`` with the additions above (in place; returned for convenience)."""
    when = (now or datetime.now(EXAMPLE_TZ)).astimezone(EXAMPLE_TZ)
    when = when.replace(microsecond=0) - timedelta(minutes=5)  # a moment ago, never ahead
    _fresh_examples(spec.get("components", {}), when.isoformat())
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "ErrorBody",
        {"title": "ErrorBody", "type": "object", "required": ["detail"],
         "properties": {"detail": {"title": "Detail", "type": "string"}}},
    )  # fmt: skip
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if operation.get("security"):
                for code, text in DOCUMENTED_ERRORS.items():
                    responses.setdefault(code, _error(text))
            if any(p.get("in") == "path" for p in operation.get("parameters", ())):
                responses.setdefault("404", _error("no such resource"))
            if "requestBody" in operation:
                for code, text in BODY_ERRORS.items():
                    responses.setdefault(code, _error(text))
            if path in CSV_PATHS and method == "get":
                content = responses.setdefault("200", {"description": "OK"}).setdefault(
                    "content", {}
                )
                content.setdefault("text/csv", {"schema": {"type": "string"}})
    return spec


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete_openapi(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
