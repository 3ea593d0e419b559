"""What a benchmark ran on: the short commit of a checkout and the machine (imported by the
scripts)."""

from __future__ import annotations

import os
import platform
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


def ram_gb() -> float:
    """Total RAM in GiB (one decimal; NaN where ``/proc/meminfo`` is missing)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return float("nan")


def machine() -> dict[str, object]:
    """Cores, RAM (GiB), Python and platform: the ``machine`` block of a result file."""
    return {
        "nproc": os.cpu_count(),
        "ram_gb": ram_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
