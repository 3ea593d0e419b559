"""Stable partitioning of enterprises: the same enterprise lands in the same partition on every
run, every machine and every Python process (``hash()`` is salted per process, so not that)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd


def partition_of(enterprise_id: str, partitions: int) -> int:
    """Partition number of one enterprise: the first 8 bytes of its sha256, modulo ``partitions``.

    Parameters
    ----------
    enterprise_id
        The enterprise identifier (a string; leading zeros matter).
    partitions
        Number of partitions, at least 1.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    digest = hashlib.sha256(str(enterprise_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % partitions


def partition_column(enterprise_ids: pd.Series | Iterable[str], partitions: int) -> np.ndarray:
    """Partition number of every row; each distinct id is hashed once."""
    ids = pd.Series(enterprise_ids, dtype="str")
    codes, uniques = pd.factorize(ids, sort=False)
    if (codes < 0).any():
        raise ValueError("enterprise_id must not be missing")
    per_unique = np.fromiter(
        (partition_of(u, partitions) for u in uniques), dtype=np.int64, count=len(uniques)
    )
    return per_unique[codes]


def partition_name(index: int) -> str:
    """File stem of a partition, zero-padded so that names sort in partition order."""
    return f"part-{index:05d}"
