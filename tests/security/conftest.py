"""The security suite's apps: the committee pages and warnings API over a real SQLite database
(``tests/serving/warnings_app.py``), and the full scoring API (the serving test world)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

# The scoring-API test world (a small world, registered models) serves here too.
from tests.serving.conftest import api, decl, world  # noqa: F401
from tests.serving.warnings_app import build_app


@pytest.fixture()
def pages(tmp_path: Path) -> Iterator[tuple[Any, TestClient, dict[str, str]]]:
    """(app, client, one key per role) of the warnings API and committee pages."""
    app, keys = build_app(tmp_path / "pages.db")
    with TestClient(app) as client:
        yield app, client, keys
