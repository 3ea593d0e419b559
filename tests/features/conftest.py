"""Fixtures for the ingest, store and mapping tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (empty when it does not exist)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def corpus() -> Path:
    return CORPUS


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"
