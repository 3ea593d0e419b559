"""Which code a benchmark measured: the short commit of a checkout (imported by the scripts)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit(checkout: Path) -> str | None:
    """The checkout's HEAD commit, short (None outside git or without git)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True,
        )  # fmt: skip
    except OSError:
        return None
    return proc.stdout.strip() or None
