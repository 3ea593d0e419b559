"""Durable file operations shared by every package: content digests, atomic writes, swaps.

A write that readers may see half-done (the store's manifest, a rescoring run's bookkeeping, a
snapshot or bundle directory) goes through a uniquely named temporary file or directory beside
its target, is flushed to disk, and is renamed over the target: readers see the old version or
the new one, and a crash leaves at worst a stray temporary (dot-prefixed) entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (its entry list is flushed too)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_beside(path: Path) -> Path:
    """A new, uniquely named empty file in ``path``'s directory (so a rename stays atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def commit_file(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk and rename it over ``path``; the rename is flushed as well."""
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably (``mode``: its permission bits,
    set before the content is written; default the temporary's ``0o600``)."""
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        tmp.write_bytes(data)
        commit_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically and durably (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def write_private_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` readable by its owner only (mode 600), atomically: a key
    or secret file is never readable by others, not even while it is written."""
    atomic_write_text(path, text, mode=0o600)


def write_json_atomic(path: Path, payload: Any, *, sort_keys: bool = False) -> None:
    """Replace ``path`` with ``payload`` as indented UTF-8 JSON, atomically and durably."""
    text = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=str)
    atomic_write_text(path, text)


def staging_directory(target: Path, prefix: str = "staging") -> Path:
    """A new empty directory beside ``target`` to build its next version in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=target.parent))


def write_directory(target: Path, write: Callable[[Path], Any], prefix: str = "staging") -> None:
    """Build ``target``'s next version with ``write(folder)`` in a staging folder beside it and
    swap it in (:func:`replace_directory`); a failed ``write`` leaves ``target`` untouched."""
    staging = staging_directory(target, prefix)
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_directory(staging, target)


def replace_directory(staging: Path, target: Path) -> None:
    """Put the fully written directory ``staging`` in place of ``target``.

    The old version is renamed aside first and removed after the new one is in place, so
    ``target`` is missing only between two renames, and is never half-written.
    """
    staging, target = Path(staging), Path(target)
    old: Path | None = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(staging, target)
    fsync_directory(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
