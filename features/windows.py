"""Vectorised point-in-time window aggregation.

Events (entity code, time, weights) are sorted once by a combined int64 key
``code * M + rank(time)``; every query (entity code, time) then finds its window
``[t - w, t)`` with two ``np.searchsorted`` calls and reads counts from cumulative sums.
Times are replaced by their dense rank among every time compared, so ties stay exact and the
combined key fits in int64. No Python loop runs over rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def to_ns(values: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC); NaT becomes the int64 minimum."""
    idx = pd.DatetimeIndex(values)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return idx.tz_convert("UTC").as_unit("ns").asi8.astype(np.int64, copy=False)


def month_start_ns(t_ns: np.ndarray) -> np.ndarray:
    """Start of the UTC calendar month of each time (int64 ns)."""
    return (
        t_ns.astype("datetime64[ns]")
        .astype("datetime64[M]")
        .astype("datetime64[ns]")
        .view(np.int64)
    )


class TimeRanks:
    """Dense ranks of every time an aggregation compares.

    Parameters
    ----------
    arrays
        All int64 ns times that will be ranked later (event times, query times, window starts).
    """

    def __init__(self, arrays: Iterable[np.ndarray]) -> None:
        self.values = sorted_unique(np.concatenate([np.asarray(a, dtype=np.int64) for a in arrays]))
        # +1 so that rank == M never collides with the next code's first rank.
        self.modulus = np.int64(len(self.values) + 1)

    def rank(self, t: np.ndarray) -> np.ndarray:
        """Rank of each time (exact for times given at construction)."""
        return np.searchsorted(self.values, t).astype(np.int64)


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """Sorted unique values (sort-based: faster than ``np.unique``'s hash path on int64)."""
    s = np.sort(x)
    if len(s) == 0:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def dense_codes(x: np.ndarray) -> np.ndarray:
    """Codes 0..k-1 of the distinct values of ``x`` (in sorted order of the values)."""
    order = np.argsort(x, kind="stable")
    s = x[order]
    new = np.empty(len(s), dtype=np.int64)
    if len(s):
        new[0] = 0
        new[1:] = s[1:] != s[:-1]
    out = np.empty(len(s), dtype=np.int64)
    out[order] = np.cumsum(new)
    return out


def combine_codes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Code of the pair (a, b); -1 where either is -1. Dense (0..k-1) over the pairs present."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ok = (a >= 0) & (b >= 0)
    out = np.full(len(a), -1, dtype=np.int64)
    if ok.any():
        nb = np.int64(b[ok].max() + 1)
        out[ok] = dense_codes(a[ok] * nb + b[ok])
    return out


class EventIndex:
    """Events of one kind for one entity, sorted by (entity code, time rank).

    Parameters
    ----------
    code
        int64 entity code per event (-1: no entity, ignored).
    rank
        int64 time rank per event (from a shared :class:`TimeRanks`).
    modulus
        ``TimeRanks.modulus``.
    weights
        Optional named 0/1 (or integer) columns to count, besides the number of events.
    times
        Optional int64 ns times, to read first/last event times.
    """

    def __init__(
        self,
        code: np.ndarray,
        rank: np.ndarray,
        modulus: np.int64,
        weights: dict[str, np.ndarray] | None = None,
        times: np.ndarray | None = None,
    ) -> None:
        valid = code >= 0
        comb = code[valid] * modulus + rank[valid]
        order = np.argsort(comb, kind="stable")
        self.modulus = modulus
        self.comb = comb[order]
        self.cum: dict[str, np.ndarray] = {}
        for name, w in (weights or {}).items():
            c = np.zeros(len(order) + 1, dtype=np.int64)
            np.cumsum(np.asarray(w)[valid][order], out=c[1:])
            self.cum[name] = c
        self.times = None if times is None else times[valid][order]

    def position(self, code: np.ndarray, rank: np.ndarray | None) -> np.ndarray:
        """Index of the first event of ``code`` at or after ``rank`` (``None``: first of code)."""
        key = code * self.modulus + (0 if rank is None else rank)
        return np.searchsorted(self.comb, key, side="left")

    def count(self, lo: np.ndarray, hi: np.ndarray, weight: str | None = None) -> np.ndarray:
        """Events (or summed weight) between positions ``lo`` and ``hi``."""
        if weight is None:
            return hi - lo
        c = self.cum[weight]
        return c[hi] - c[lo]

    def time_at(self, pos: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Event time at ``pos`` where ``ok``, else NaN (float64 ns are not used; int64 kept)."""
        assert self.times is not None
        out = np.zeros(len(pos), dtype=np.int64)
        out[ok] = self.times[pos[ok]]
        return out
