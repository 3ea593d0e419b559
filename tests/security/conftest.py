"""The security suite's apps: the committee pages and warnings API over a real SQLite database
(``tests/serving/warnings_app.py``), and the full scoring API (the serving test world)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

SERVING_TESTS = Path(__file__).resolve().parents[1] / "serving"
sys.path.insert(0, str(SERVING_TESTS))

from tests.serving.warnings_app import build_app  # noqa: E402


@pytest.fixture()
def pages(tmp_path: Path) -> Iterator[tuple[Any, TestClient, dict[str, str]]]:
    """(app, client, one key per role) of the warnings API and committee pages."""
    app, keys = build_app(tmp_path / "pages.db")
    with TestClient(app) as client:
        yield app, client, keys


def _serving_fixtures() -> Any:
    """The scoring-API test world of ``tests/serving/conftest.py`` (a small world, registered
    models, a live-server helper), loaded under its own name so its fixtures serve here too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("serving_conftest", SERVING_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serving_conftest"] = module
    spec.loader.exec_module(module)
    return module


_serving = _serving_fixtures()
world = _serving.world
decl = _serving.decl
api = _serving.api
make_keys = _serving.make_keys
LiveServer = _serving.LiveServer
