"""The simulation's calendar constants and small vectorised helpers (no state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TZ = "Asia/Shanghai"
TZ_OFFSET_S = 8 * 3600  # Asia/Shanghai has had no daylight saving since 1991
DAY = 86_400
END_LOCAL = np.datetime64("2026-11-01T00:00:00")  # exclusive end, local time
N_DAYS = 1096  # 2023-11-01 .. 2026-10-31
START_LOCAL = END_LOCAL - np.timedelta64(N_DAYS, "D")
START_S = int((START_LOCAL - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "s")) - (
    TZ_OFFSET_S
)
END_S = START_S + N_DAYS * DAY

# Target mean of p_true over all declarations; the intercept is solved for it.
TARGET_MEAN_P = 0.032
RANDOM_SHARE = 0.015
TARGETED_SHARE = 0.08
NOISE_SD = 0.35  # irreducible declaration-level log-odds noise
CHINESE_NEW_YEAR = ("2024-02-10", "2025-01-29", "2026-02-17")


# --------------------------------------------------------------------------------------------
# small vectorised helpers
# --------------------------------------------------------------------------------------------
def categorical(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Draw one category per row from per-row probability tables ``probs[rows]``."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(rows))
    return (u[:, None] > cum[rows]).sum(axis=1).astype(np.int64)


def choice(rng: np.random.Generator, weights: dict[str, float], size: int) -> np.ndarray:
    """Draw indices into ``list(weights)`` with the given weights."""
    p = np.array(list(weights.values()), dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


def grouped_pick(
    group_of_item: np.ndarray, weight: np.ndarray, group: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Pick an item per row from its group with probability proportional to ``weight``.

    Items are sorted by group; ``u`` in [0, 1) places the row inside its group's cumulative
    weight, so a fixed ``u`` always picks the same item (used for loyal trading pairs).
    """
    order = np.argsort(group_of_item, kind="stable")
    g_sorted = group_of_item[order]
    cum = np.cumsum(weight[order])
    n_groups = int(group_of_item.max()) + 1
    first = np.searchsorted(g_sorted, np.arange(n_groups), side="left")
    last = np.searchsorted(g_sorted, np.arange(n_groups), side="right")
    base = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
    total = cum[np.maximum(last - 1, 0)] - base
    target = base[group] + u * total[group]
    pos = np.searchsorted(cum, target, side="right")
    pos = np.clip(pos, first[group], last[group] - 1)
    return order[pos]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as fixed-width zero-padded ASCII digits, shape (n, width)."""
    v = values.astype(np.int64).copy()
    out = np.empty((len(v), width), dtype=np.uint8)
    for k in range(width - 1, -1, -1):
        out[:, k] = 48 + (v % 10)
        v //= 10
    return out


def ascii_column(parts: list[np.ndarray]) -> pa.Array:
    """Concatenate (n, w) uint8 ASCII blocks into one fixed-width Arrow string column."""
    block = np.ascontiguousarray(np.concatenate(parts, axis=1))
    width = block.shape[1]
    return pa.array(block.view(f"S{width}").ravel()).cast(pa.string())


def const_block(text: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text.encode(), dtype=np.uint8), (n, len(text)))


def take(dictionary: list[str] | np.ndarray, codes: np.ndarray) -> pa.Array:
    """Strings by code from a small dictionary; negative codes become null."""
    codes = np.asarray(codes, dtype=np.int64)
    mask = codes < 0
    idx = pa.array(np.where(mask, 0, codes), mask=mask if mask.any() else None)
    return pc.take(pa.array(list(dictionary), type=pa.string()), idx)


def timestamps(seconds_utc: np.ndarray) -> pa.Array:
    return pa.array(
        np.asarray(seconds_utc, dtype=np.int64) * 1_000_000, type=pa.timestamp("us", tz=TZ)
    )


def suffix_table(products: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """The Chinese 7th-8th digits seen with each product, as a 0/1 table."""
    suffixes = sorted({s for p in products for s in p.suffixes})
    tab = np.zeros((len(products), len(suffixes)))
    for i, p in enumerate(products):
        for s_ in p.suffixes:
            tab[i, suffixes.index(s_)] = 1.0
    return suffixes, tab
