"""Durable file helpers: digests, atomic writes and directory swaps."""

import hashlib
import json

import pytest

from features.files import (
    atomic_write_bytes,
    replace_directory,
    sha256_file,
    staging_directory,
    write_directory,
    write_json_atomic,
    write_private_text,
)


def test_sha256_file_matches_hashlib_over_chunk_boundaries(tmp_path):
    data = bytes(range(256)) * 9000  # > 2 MiB: several chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "manifest.json"
    write_json_atomic(path, {"b": 1, "a": "国门"}, sort_keys=True)
    write_json_atomic(path, {"v": 2})
    assert json.loads(path.read_text("utf-8")) == {"v": 2}
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]


def test_failed_write_keeps_the_old_version(tmp_path):
    path = tmp_path / "state.json"
    atomic_write_bytes(path, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_replace_directory_swaps_whole_versions(tmp_path):
    target = tmp_path / "snapshot"
    for version in ("v1", "v2"):
        staging = staging_directory(target, "snapshot")
        (staging / "version").write_text(version)
        replace_directory(staging, target)
        assert (target / "version").read_text() == version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot"]


def test_write_directory_swaps_a_complete_version_in_and_keeps_the_old_one_on_failure(tmp_path):
    target = tmp_path / "snapshot"
    write_directory(target, lambda d: (d / "v").write_text("1"), prefix="snapshot")
    assert (target / "v").read_text() == "1"

    def half_written(folder):
        (folder / "v").write_text("2")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_directory(target, half_written, prefix="snapshot")
    assert (target / "v").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot"]  # no staging left


def test_private_text_is_owner_only_and_replaced_atomically(tmp_path):
    path = tmp_path / "data" / "demo-keys.env"
    path.parent.mkdir()
    path.write_text("OLD=1\n")
    path.chmod(0o644)  # an older copy made with a looser mode
    write_private_text(path, "INSPECTOR_KEY=gmk_x\n")
    assert path.read_text() == "INSPECTOR_KEY=gmk_x\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["demo-keys.env"]
